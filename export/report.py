"""The export report: ``OUT/<name>/export_report.json`` (``OUT/<name>/v<version>/...`` for a
version other than 1.0) and the same as a printed table.

The report describes every archive of the model in OUT: a run of some formats replaces their
entries and keeps the entries of the other formats whose archives are still there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_serializer

REPORT_NAME = "export_report.json"
DEFAULT_VERSION = "1.0"


def report_dir(out: Path, model: str, version: str) -> Path:
    """Where a version's report and per-format files go: OUT/NAME, or OUT/NAME/v<version>."""
    return out / model if version == DEFAULT_VERSION else out / model / f"v{version}"


class FormatReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parity_ok: bool = False
    max_abs_err: float | None = None
    min_cosine: float | None = None  # quantised and reduced-precision formats: their parity
    precision: str = "fp32"  # the numbers the format computes in (--precision)
    # compile: torch.compile of every served batch size in a fresh process, cold and then
    # from the Inductor cache artifacts the archive carries (what a worker's start costs).
    compile_cold_s: float | None = None
    compile_warm_s: float | None = None
    library_max_abs_err: float | None = None  # against the model's own library (BYOM)
    latency_ms: dict[str, float] = Field(default_factory=dict)
    bytes: int = 0
    sha256: str = ""
    export_s: float = 0.0
    archive: str | None = None
    archive_sha256: str = ""  # the archive's pin (servegate.pins)
    error: str | None = None
    exported_at: str | None = None  # UTC, ISO 8601: entries of earlier runs stay in the report
    # Text generation (greedy, one prompt): time to the first piece of text, tokens per second.
    first_token_ms: float | None = None
    tokens_per_s: float | None = None

    @field_serializer("max_abs_err")
    def _finite(self, value: float | None) -> float | None:
        return value if value is not None and math.isfinite(value) else None


class EagerReport(BaseModel):
    latency_ms: dict[str, float] = Field(default_factory=dict)


class ExportReport(BaseModel):
    model: str
    version: str = "1.0"
    formats: dict[str, FormatReport] = Field(default_factory=dict)
    eager: EagerReport = EagerReport()
    library: str | None = None  # the library the served answers were checked against

    @property
    def failed(self) -> dict[str, str]:
        return {f: r.error or "failed" for f, r in self.formats.items() if not r.parity_ok}

    @classmethod
    def read(cls, directory: Path) -> ExportReport:
        """The report in ``directory``, or an empty one (none yet, or unreadable)."""
        try:
            return cls.model_validate_json((directory / REPORT_NAME).read_text())
        except (OSError, ValueError):
            return cls(model=directory.name)

    def kept(self, archives: Mapping[str, Path], replaced: Iterable[str]) -> ExportReport:
        """The entries of formats not exported again whose archive is still in OUT."""
        again = set(replaced)
        formats = {
            fmt: entry
            for fmt, entry in self.formats.items()
            if fmt not in again and entry.parity_ok and fmt in archives
        }
        return ExportReport(
            model=self.model, version=self.version, formats=formats, library=self.library
        )

    def write(self, directory: Path) -> Path:
        path = directory / REPORT_NAME
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")
        return path

    def table(self) -> str:
        timings = [self.eager.latency_ms, *(r.latency_ms for r in self.formats.values())]
        sizes = sorted({b for t in timings for b in t}, key=int)
        head = ["format", "parity", "max_abs_err", *(f"ms@b{b}" for b in sizes), "MB", "export_s"]
        rows = []
        if self.eager.latency_ms:  # traced models: the eager module they were exported from
            rows.append(
                ["eager", "-", "-", *(_ms(self.eager.latency_ms.get(b)) for b in sizes), "-", "-"]
            )
        for fmt, r in self.formats.items():
            err = "-" if r.max_abs_err is None else f"{r.max_abs_err:.2e}"
            rows.append(
                [
                    fmt,
                    "ok" if r.parity_ok else "FAILED",
                    err,
                    *(_ms(r.latency_ms.get(b)) for b in sizes),
                    f"{r.bytes / 1e6:.1f}",
                    f"{r.export_s:.1f}",
                ]
            )
        widths = [max(len(str(row[i])) for row in (head, *rows)) for i in range(len(head))]
        lines = [
            "  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True))
            for row in (head, *rows)
        ]
        if self.library:
            errs = ", ".join(
                f"{fmt} {r.library_max_abs_err:.2e}"
                for fmt, r in self.formats.items()
                if r.library_max_abs_err is not None
            )
            lines.append(f"served answers against {self.library}: max abs error {errs or '-'}")
        lines.extend(
            f"{fmt}: computes in {r.precision}, min cosine {r.min_cosine:.4f} to fp32 eager"
            for fmt, r in self.formats.items()
            if r.parity_ok and r.precision != "fp32" and r.min_cosine is not None
        )
        lines.extend(
            f"{fmt}: torch.compile of every served shape in a fresh process "
            f"{r.compile_cold_s:.1f} s cold, {r.compile_warm_s:.1f} s from the archive's cache"
            for fmt, r in self.formats.items()
            if r.parity_ok and r.compile_cold_s is not None and r.compile_warm_s is not None
        )
        lines.extend(
            f"{fmt}: greedy tokens equal transformers' generate; first token "
            f"{r.first_token_ms:.1f} ms, {r.tokens_per_s:.1f} tokens/s (one prompt)"
            for fmt, r in self.formats.items()
            if r.parity_ok and r.first_token_ms is not None and r.tokens_per_s is not None
        )
        return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
