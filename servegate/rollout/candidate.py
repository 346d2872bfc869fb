"""The archive a rollout serves: the one pinned for MODEL at VERSION (and FORMAT) in the store,
whose export report says its format passed parity, for exactly the pinned bytes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from export.report import REPORT_NAME, ExportReport, report_dir
from servegate import pins


class RolloutRefused(Exception):
    """Refused before any traffic moved; the message says why and what to do."""


@dataclass(frozen=True)
class Candidate:
    archive: str  # its file name in the store
    model: str  # the exported model (spec name), e.g. minilm
    version: str
    format: str
    sha256: str


def find(store: Path, pin_file: Path, model: str, version: str, fmt: str | None) -> Candidate:
    try:
        pinned = pins.read(pin_file).archives
    except pins.PinError as exc:
        raise RolloutRefused(str(exc)) from None
    matches = sorted(
        (name, pin)
        for name, pin in pinned.items()
        if pin.model == model and pin.version == version and fmt in (None, pin.format)
    )
    wanted = f"{model} version {version}" + (f" in {fmt}" if fmt else "")
    if not matches:
        raise RolloutRefused(
            f"no archive of {wanted} is pinned in {pin_file}: export it first "
            f"(make export MODEL={model} VERSION={version}"
            + (f" FORMATS={fmt}" if fmt else "")
            + f" OUT={store})"
        )
    if len(matches) > 1:
        formats = ", ".join(p.format for _, p in matches)
        raise RolloutRefused(f"{wanted} is exported in several formats ({formats}): pick --format")
    name, pin = matches[0]
    _check_report(store, name, pin)
    return Candidate(name, model, version, pin.format, pin.sha256)


def _check_report(store: Path, name: str, pin: pins.Pin) -> None:
    where = report_dir(store, pin.model, pin.version)
    entry = ExportReport.read(where).formats.get(pin.format)
    path = where / REPORT_NAME
    if entry is None:
        raise RolloutRefused(f"{path} has no {pin.format} entry: export {name} again")
    if not entry.parity_ok:
        raise RolloutRefused(
            f"{name}: its export report ({path}) says {pin.format} failed its parity check "
            f"({entry.error or 'parity_ok is false'})"
        )
    if entry.archive_sha256 != pin.sha256:
        raise RolloutRefused(
            f"{name}: its export report ({path}) describes another archive (sha256 "
            f"{entry.archive_sha256 or 'none'}) than the pinned one ({pin.sha256})"
        )
