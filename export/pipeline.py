"""``servegate export``: spec -> artifacts -> parity -> timing -> archives -> report."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch
from pydantic import ValidationError

from export.declared import run_user_code, verify_declared
from export.errors import ExportError, FormatFailed, SpecMismatch
from export.exporters import get_exporter
from export.exporters.compile import read_load_times
from export.failure import strip_ansi, summary
from export.formats import (
    DEFAULT_FORMATS,
    FORMATS,
    GENERATION,
    PRECISION_FORMATS,
    QUANTIZED,
    Format,
)
from export.generation.options import GenerationOptions
from export.generation.pipeline import is_generation, run_generation_export
from export.library_parity import LibraryCheck
from export.package import archive_path, build_archive
from export.parity import EagerReference
from export.parity_inputs import parity_cases, seeded_example
from export.probe import probe
from export.progress import step
from export.registry import resolve
from export.report import EagerReport, ExportReport, FormatReport, report_dir
from export.sources.lightning_load import allowed_globals
from export.sources.options import SourceOptions
from export.spec import ModelSpec, ServingConfig
from export.timing import TimingPlan, latency_ms
from export.worker_inputs import check_worker_inputs
from handlers.manifest import DEFAULT_VERSION, Precision, sha256_file
from handlers.runtimes import load_runtime
from handlers.runtimes.eager import EagerRuntime
from servegate import pins

log = logging.getLogger("servegate.export")


@dataclass(frozen=True)
class ExportRequest:
    model: str
    out: Path
    formats: tuple[Format, ...] = DEFAULT_FORMATS
    weights: Path | None = None
    timing: TimingPlan = field(default_factory=TimingPlan)
    # Where to export and verify: AOTInductor compiles for this device; "cuda" needs a GPU.
    device: str = "cpu"
    # Overrides of the spec's ServingConfig fields (model-config.yaml), e.g. batch_size.
    serving_overrides: Mapping[str, int] = field(default_factory=dict)
    # What a model source needs besides MODEL: a Lightning checkpoint, hub kwargs, trust flags.
    source: SourceOptions = field(default_factory=SourceOptions)
    # The archives' version: 1.0 writes NAME_<fmt>.mar, another NAME_<fmt>.v<version>.mar
    # beside them (handlers.manifest.archive_file_name), with its own report.
    version: str = DEFAULT_VERSION
    # A causal LM's limits and placement (export.generation).
    generation: GenerationOptions = field(default_factory=GenerationOptions)
    # The numbers the formats compute in; other than fp32 only for PRECISION_FORMATS, verified
    # by cosine similarity to fp32 eager (as onnx_int8 is).
    precision: Precision = "fp32"


def run_export(request: ExportRequest) -> ExportReport:
    _check_precision(request)
    if is_generation(request.model, request.source.task):
        return run_generation_export(
            request.model,
            request.out,
            request.formats,
            request.generation,
            name=request.source.name,
            version=request.version,
        )
    eager_only = [f for f in request.formats if f in GENERATION]
    if eager_only:
        raise ExportError(
            f"{', '.join(eager_only)} serve causal LMs (task text_generation) only; "
            f"this model exports to {', '.join(DEFAULT_FORMATS)} or onnx_int8"
        )
    spec = resolve(request.model, request.source)
    if request.serving_overrides:
        serving = {**spec.serving.model_dump(), **request.serving_overrides}
        try:
            spec = spec.model_copy(update={"serving": ServingConfig.model_validate(serving)})
        except ValidationError as exc:
            raise ExportError(f"invalid serving settings: {exc.errors()[0]['msg']}") from None
    work = report_dir(request.out, spec.name, request.version)
    work.mkdir(parents=True, exist_ok=True)
    with _exclusive(work), _full_fp32():
        return _run_locked(request, spec, work)


def _check_precision(request: ExportRequest) -> None:
    """Refuse, before any work, a precision that a requested format cannot compute in."""
    if request.precision == "fp32":
        return
    if is_generation(request.model, request.source.task):
        raise ExportError("a causal LM takes its precision from --dtype, not --precision")
    fixed = [f for f in request.formats if f not in PRECISION_FORMATS]
    if fixed:
        raise ExportError(
            f"precision {request.precision} applies to {', '.join(sorted(PRECISION_FORMATS))} "
            f"only; {', '.join(fixed)} compute(s) in fp32: export those without --precision "
            f"(PRECISION=), or ask for --formats {','.join(sorted(PRECISION_FORMATS))}"
        )
    if request.precision == "fp16" and not request.device.startswith("cuda"):
        raise ExportError(
            "precision fp16 is for GPUs (--device cuda): on a CPU many operators have no fp16 "
            "kernel or run slower than fp32; use bf16 on a CPU"
        )


@contextmanager
def _full_fp32() -> Iterator[None]:
    """Eager references in true fp32: TF32 convolutions (on by default on CUDA) alone move
    ResNet logits by ~2e-3, which would be blamed on the exported artifact."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextmanager
def _exclusive(work: Path) -> Iterator[None]:
    """One export per model and output directory at a time: two would interleave writes and
    package an artifact beside another run's manifest. The lock is taken on the directory
    itself, so no lock file is left behind."""
    (work / ".export.lock").unlink(missing_ok=True)  # left by servegate before this lock
    fd = os.open(work, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExportError(f"another export into {work} is running; wait for it") from None
        yield
    finally:
        os.close(fd)


def _run_locked(request: ExportRequest, spec: ModelSpec, work: Path) -> ExportReport:
    with step(f"[{spec.name}] building the eager model and checking the declared tensors"):
        check_worker_inputs(spec, work / "worker")
        with allowed_globals(request.source):  # --weights model.ckpt with --allow-global
            module = run_user_code("build()", spec.build, request.weights)
        eager = EagerRuntime(module, torch.device(request.device))
        verify_declared(spec, eager)
        cases = run_user_code("the parity inputs", parity_cases, spec, work)
        reference = run_user_code("the eager parity reference", EagerReference, cases, eager)
        library = _library_check(spec, eager, work)
    archives = _archives_in(request.out, spec, request.version)
    report = ExportReport.read(work).kept(archives, request.formats)
    report.model = spec.name
    report.version = request.version
    report.library = library.library if library else None
    for i, fmt in enumerate(request.formats, 1):
        log.info("[%s] format %d/%d: %s", spec.name, i, len(request.formats), fmt)
        try:
            report.formats[fmt] = _export_format(
                spec,
                fmt,
                module=module,
                checks=(reference, library),
                request=request,
                work=work,
            )
        except FormatFailed as exc:
            log.error("[%s] %s", spec.name, exc)
            report.formats[fmt] = FormatReport(error=f"{exc.stage}: {exc.reason}")
            _drop_stale_archive(archive_path(request.out, spec, fmt, request.version))
    with step(f"[{spec.name}] timing eager"):
        report.eager = EagerReport(latency_ms=latency_ms(eager, spec, request.timing))
    path = report.write(work)
    log.info("[%s] report written to %s", spec.name, path)
    return report


def _export_format(
    spec: ModelSpec,
    fmt: Format,
    *,
    module: torch.nn.Module,
    checks: tuple[EagerReference, LibraryCheck | None],
    request: ExportRequest,
    work: Path,
) -> FormatReport:
    reference, library = checks
    fmt_dir = work / fmt
    shutil.rmtree(fmt_dir, ignore_errors=True)
    artifact_dir = fmt_dir / "artifact"
    artifact_dir.mkdir(parents=True)
    example = tuple(t.to(request.device) for t in seeded_example(spec, spec.sizes()))
    started = time.perf_counter()
    with _stage(fmt, "export", fmt_dir), step(f"[{spec.name}] {fmt}: exporting"):
        exporter = get_exporter(fmt, request.precision)
        artifacts = exporter.export(module, spec, example, artifact_dir)
    export_s = time.perf_counter() - started
    precision: Precision = request.precision if fmt in PRECISION_FORMATS else "fp32"
    with _stage(fmt, "reload", fmt_dir), step(f"[{spec.name}] {fmt}: reloading"):
        if fmt != "compile":  # its exporter loaded it in fresh processes already
            probe(fmt, artifacts[0], request.device, example)
        runtime = load_runtime(fmt, artifacts[0], torch.device(request.device))
    with _stage(fmt, "parity", fmt_dir), step(f"[{spec.name}] {fmt}: parity against eager"):
        if fmt in QUANTIZED or precision != "fp32":
            parity = reference.check_cosine(runtime, spec)
        else:
            parity = reference.check(runtime, spec)
    if not parity.ok:
        raise FormatFailed(fmt, "parity", parity.reason or "outputs differ from eager")
    library_err = None
    if library is not None:
        with (
            _stage(fmt, "library parity", fmt_dir),
            step(f"[{spec.name}] {fmt}: {library.library}"),
        ):
            against = library.check(runtime)
        if not against.ok:
            raise FormatFailed(fmt, "library parity", against.reason or "differs from the library")
        library_err = against.max_abs_err
    with _stage(fmt, "timing", fmt_dir), step(f"[{spec.name}] {fmt}: timing"):
        latency = latency_ms(runtime, spec, request.timing)
    with _stage(fmt, "packaging", fmt_dir), step(f"[{spec.name}] {fmt}: packaging"):
        archive = build_archive(
            spec,
            fmt,
            artifacts,
            fmt_dir / "archive",
            request.out,
            version=request.version,
            precision=precision,
            min_cosine=parity.min_cosine,
        )
    cold_s, warm_s = read_load_times(fmt_dir)
    return FormatReport(
        parity_ok=True,
        precision=precision,
        compile_cold_s=cold_s,
        compile_warm_s=warm_s,
        max_abs_err=parity.max_abs_err,
        min_cosine=parity.min_cosine,
        library_max_abs_err=library_err,
        latency_ms=latency,
        bytes=sum(p.stat().st_size for p in artifacts),
        sha256=sha256_file(artifacts[0]),
        export_s=round(export_s, 2),
        archive=str(archive),
        archive_sha256=pins.read(pins.pin_file_for(request.out)).archives[archive.name].sha256,
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _library_check(spec: ModelSpec, eager: EagerRuntime, work: Path) -> LibraryCheck | None:
    """The library's own answers, checked first against eager: a difference there is in
    servegate's reading of the model (preprocessing, pooling), not in any export."""
    if spec.library_reference is None:
        return None
    reference = run_user_code("the library's reference predictions", spec.library_reference)
    library = LibraryCheck(spec, reference, work / "library")
    against = library.check(eager)
    if not against.ok:
        raise SpecMismatch(
            f"the eager model behind servegate's {spec.task} decoding differs from "
            f"{library.library}: {against.reason}"
        )
    log.info(
        "[%s] eager behind the worker's decoding matches %s (max abs error %.2e)",
        spec.name,
        library.library,
        against.max_abs_err,
    )
    return library


@contextmanager
def _stage(fmt: str, stage: str, fmt_dir: Path) -> Iterator[None]:
    """Turn any exception of one stage into ``FormatFailed`` with a one-paragraph summary (the
    user's line of code where there is one); keep the traceback in ``error.log``."""
    console_log = fmt_dir / "console.log"
    try:
        # What torch and the exporters print (FX graphs, warnings) goes to a file, not the
        # console: on failure it is kept in error.log beside the full traceback.
        with console_log.open("a") as console, redirect_stdout(console), redirect_stderr(console):
            yield
    except FormatFailed:
        raise
    except Exception as exc:
        log_file = fmt_dir / "error.log"
        printed = console_log.read_text(errors="replace")
        log_file.write_text(
            strip_ansi("".join(traceback.format_exception(exc)))
            + (f"\n--- printed during {stage} ---\n{strip_ansi(printed)}" if printed else "")
        )
        reason = f"{summary(exc)} (full traceback: {log_file})"
        raise FormatFailed(fmt, stage, reason) from exc


def _archives_in(out: Path, spec: ModelSpec, version: str) -> dict[str, Path]:
    """This model's archives of ``version`` in OUT, by format."""
    paths = {fmt: archive_path(out, spec, fmt, version) for fmt in FORMATS}
    return {fmt: p for fmt, p in paths.items() if p.is_file()}


def _drop_stale_archive(path: Path) -> None:
    if path.exists():
        path.unlink()
        log.warning("removed %s from an earlier export: this format no longer verifies", path)
    pins.forget(pins.pin_file_for(path.parent), path.name)


__all__ = ["DEFAULT_FORMATS", "FORMATS", "ExportRequest", "run_export"]
