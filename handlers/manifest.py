"""The servegate manifest packaged in every archive (``servegate.json``).

It names the artifact, the runtime format, the task and its settings, and the SHA-256 of every
other file of the archive: artifacts, the task's files, the handler, ``model-config.yaml`` and
TorchServe's ``MAR-INF/MANIFEST.json``. The worker checks, before loading anything, that the
extracted archive holds exactly those files with those digests.

A manifest travels inside the archive it describes, so it guards against corruption, not
against whoever can rewrite the archive: that is the job of the archive's pin, recorded outside
the store at export and checked before TorchServe sees the file (``servegate.pins``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from handlers.errors import IntegrityError

log = logging.getLogger(__name__)

MANIFEST_NAME = "servegate.json"
# Python writes bytecode beside the handler when TorchServe imports it: the one thing in an
# extracted archive that the export could not have hashed. Archives are sealed without it.
BYTECODE_DIR = "__pycache__"
Format = Literal[
    "torchscript", "aoti", "onnx", "onnx_int8", "compile", "eager", "accelerate", "deepspeed_tp"
]
# The numbers a format computes in: fp32 unless the export was asked for another
# (handlers.runtimes.compile_settings.Precision; kept torch-free here).
Precision = Literal["fp32", "bf16", "fp16"]
Task = Literal[
    "text_embedding", "text_classification", "image_classification", "tensor", "text_generation"
]
# Every archive was version 1.0 before versions existed; its file keeps the plain name.
DEFAULT_VERSION = "1.0"
VERSION_PATTERN = r"^[0-9]{1,6}(\.[0-9]{1,6}){0,3}$"


def archive_file_name(model_name: str, version: str) -> str:
    """The file of TorchServe model ``model_name`` at ``version`` in a store: ``NAME.mar`` for
    1.0, ``NAME.v<version>.mar`` otherwise, so that versions sit side by side and neither
    overwrites the other. (gateway/backends/archive.py repeats this rule without importing
    handlers; tests/export/test_versions.py checks that they agree.)"""
    return f"{model_name}.mar" if version == DEFAULT_VERSION else f"{model_name}.v{version}.mar"


class TensorInfo(BaseModel):
    """Name, dtype and shape of one model input or output; ``-1`` marks a dynamic axis."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    datatype: str  # OIP v2 datatype: FP32, INT64, BYTES, ...
    shape: tuple[int, ...]


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    format: Format
    version: str = Field(default=DEFAULT_VERSION, pattern=VERSION_PATTERN)
    task: Task
    artifact: str
    sha256: dict[str, str] = Field(description="file name in the archive -> hex digest")
    task_config: dict[str, Any] = Field(default_factory=dict)
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    precision: Precision = "fp32"
    # Cosine similarity of this format's outputs to fp32 eager at export (reduced precision).
    min_cosine: float | None = None

    @field_validator("sha256")
    @classmethod
    def _archive_paths(cls, digests: dict[str, str]) -> dict[str, str]:
        for name in digests:
            reason = unsafe_member(name)
            if reason:
                raise ValueError(f"manifest entry {name!r} {reason}")
        return digests

    @classmethod
    def read(cls, model_dir: Path) -> Manifest:
        try:
            return cls.model_validate_json((model_dir / MANIFEST_NAME).read_text())
        except FileNotFoundError:
            raise IntegrityError(f"the archive has no {MANIFEST_NAME}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            raise IntegrityError(
                f"{MANIFEST_NAME} is not a valid manifest: {first['msg']}"
            ) from None

    def write(self, directory: Path) -> Path:
        path = directory / MANIFEST_NAME
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")
        return path

    def verify(self, model_dir: Path) -> None:
        """Refuse an extracted archive that holds a file the manifest does not list, lacks one it
        lists, or has one whose digest differs (tampered or corrupted)."""
        if self.artifact not in self.sha256:
            raise IntegrityError(f"the manifest does not cover its artifact {self.artifact}")
        present = set(archive_files(model_dir))
        unlisted = sorted(present - set(self.sha256))
        if unlisted:
            log.error("refusing to load %s: %s not covered by the manifest", model_dir, unlisted)
            raise IntegrityError(f"files not covered by the manifest: {', '.join(unlisted)}")
        missing = sorted(set(self.sha256) - present)
        if missing:
            raise IntegrityError(f"files listed in the manifest are missing: {', '.join(missing)}")
        for name, expected in sorted(self.sha256.items()):
            actual = sha256_file(model_dir / name)
            if actual != expected:
                log.error(
                    "refusing to load %s: SHA-256 mismatch (manifest %s, file %s); "
                    "the archive was modified after export",
                    name,
                    expected,
                    actual,
                )
                raise IntegrityError(f"artifact {name} failed its SHA-256 check")


def unsafe_member(name: str) -> str | None:
    """Why ``name`` cannot be a file of an archive (None when it can): it must be a relative
    POSIX path that stays inside the archive."""
    path = PurePosixPath(name)
    if not name or "\\" in name or "\x00" in name:
        return "is not a plain relative path"
    if path.is_absolute():
        return "is an absolute path"
    if any(part in ("..", ".", "") for part in name.split("/")):
        return "leaves the archive or is not normalised"
    if name == MANIFEST_NAME:
        return "is the manifest itself"
    return None


def archive_files(model_dir: Path) -> list[str]:
    """Every file under an extracted archive as a POSIX path relative to it, without the
    manifest and the bytecode Python writes at import. A link is refused: an archive has none."""
    found = []
    for path in sorted(model_dir.rglob("*")):
        rel = path.relative_to(model_dir)
        if path.is_symlink():
            raise IntegrityError(f"{rel.as_posix()} is a link; an archive holds plain files only")
        if path.is_dir() or rel.parts[0] == BYTECODE_DIR or rel.as_posix() == MANIFEST_NAME:
            continue
        found.append(rel.as_posix())
    return found


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
