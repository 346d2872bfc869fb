"""Archive pins: each archive's SHA-256, recorded outside the model store when it is exported and
checked before TorchServe sees the file.

The manifest inside an archive (``servegate.json``) vouches for the archive's other files, but
whoever can write the store can rewrite an archive and its manifest together. The pin file lives
beside the store, not in it (``model_store/`` -> ``model_store.pins.json``); only
``servegate export`` writes it. Serving copies each selected archive out of the store into a
directory private to the TorchServe instance, hashing the bytes as it copies them, and refuses
any archive that has no pin or whose copy differs from it. TorchServe reads only those copies,
so a file replaced in the store after the check is never the file that is loaded.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handlers.manifest import sha256_file

log = logging.getLogger(__name__)

PIN_SUFFIX = ".pins.json"


class PinError(Exception):
    """An archive that must not be served: unpinned, or different from its pin."""


class Pin(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    model: str
    format: str
    version: str = "1.0"
    pinned_at: str


class PinFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    archives: dict[str, Pin] = Field(default_factory=dict, description="archive file name -> pin")


def pin_file_for(store: Path) -> Path:
    """Where the pins of ``store``'s archives are kept: beside the store, never inside it."""
    resolved = store.resolve()
    if resolved.parent == resolved:
        raise PinError("the model store cannot be the file system's root")
    return resolved.with_name(resolved.name + PIN_SUFFIX)


def read(pin_file: Path) -> PinFile:
    """The pins in ``pin_file``; none when it does not exist. A file that does not parse is an
    error, never "no pins"."""
    try:
        raw = pin_file.read_text()
    except FileNotFoundError:
        return PinFile()
    except OSError as exc:
        raise PinError(f"cannot read the pin file {pin_file}: {exc.strerror}") from None
    try:
        return PinFile.model_validate_json(raw)
    except ValidationError as exc:
        raise PinError(f"the pin file {pin_file} is not valid: {exc.errors()[0]['msg']}") from None


def record(pin_file: Path, archive: Path, *, model: str, fmt: str, version: str = "1.0") -> Pin:
    """Pin ``archive`` (just written by an export) in ``pin_file``."""
    pin = Pin(
        sha256=sha256_file(archive),
        size=archive.stat().st_size,
        model=model,
        format=fmt,
        version=version,
        pinned_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    with _locked(pin_file):
        pins = read(pin_file)
        _write(pin_file, PinFile(archives={**pins.archives, archive.name: pin}))
    log.info("pinned %s (sha256 %s) in %s", archive.name, pin.sha256, pin_file)
    return pin


def forget(pin_file: Path, archive_name: str) -> None:
    """Drop the pin of an archive that an export removed."""
    with _locked(pin_file):
        pins = read(pin_file)
        if archive_name in pins.archives:
            kept = {n: p for n, p in pins.archives.items() if n != archive_name}
            _write(pin_file, PinFile(archives=kept))


def stage(store: Path, names: Iterable[str], pin_file: Path, staged: Path) -> None:
    """Copy each named archive (``NAME.mar``) from ``store`` into ``staged`` (emptied first,
    private to its owner, files read-only), checking each copy against its pin."""
    pins = read(pin_file)
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(mode=0o700, parents=True)
    for name in names:
        archive = f"{name}.mar"
        pin = pins.archives.get(archive)
        if pin is None:
            raise PinError(
                f"{archive} (in {store}) has no pin in {pin_file}: only archives that "
                "`servegate export` wrote into this store are served; export it again"
            )
        copy_verified(store / archive, pin, staged / archive)


def copy_verified(source: Path, pin: Pin, dest: Path) -> None:
    """Copy ``source`` to ``dest`` (read-only) if the bytes copied are the pinned ones."""
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as src, dest.open("wb") as dst:
        while block := src.read(1 << 20):
            digest.update(block)
            dst.write(block)
            size += len(block)
    if digest.hexdigest() != pin.sha256 or size != pin.size:
        dest.unlink()
        raise PinError(
            f"{source.name} (in {source.parent}) differs from the archive that was exported "
            f"(pinned sha256 {pin.sha256}, {pin.size} bytes; found {digest.hexdigest()}, "
            f"{size} bytes): it was modified after export; export it again"
        )
    dest.chmod(0o444)


@contextmanager
def _locked(pin_file: Path) -> Iterator[None]:
    """One writer of a pin file at a time (two exports into one store). The lock is taken on
    the directory that holds it, so no lock file is left behind."""
    fd = os.open(pin_file.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(pin_file: Path, pins: PinFile) -> None:
    partial = pin_file.with_name(f".{pin_file.name}.partial")
    partial.write_text(pins.model_dump_json(indent=2) + "\n")
    os.replace(partial, pin_file)
