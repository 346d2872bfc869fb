"""The servegate manifest packaged in every archive (``servegate.json``).

It names the artifact, the runtime format, the task and its settings, and the SHA-256 of every
file the worker will load. The worker verifies each hash before loading anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from handlers.errors import IntegrityError

log = logging.getLogger(__name__)

MANIFEST_NAME = "servegate.json"
Format = Literal["torchscript", "aoti", "onnx", "onnx_int8", "eager"]
Task = Literal["text_embedding", "text_classification", "image_classification", "tensor"]


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
    task: Task
    artifact: str
    sha256: dict[str, str] = Field(description="file name in the archive -> hex digest")
    task_config: dict[str, Any] = Field(default_factory=dict)
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    @classmethod
    def read(cls, model_dir: Path) -> Manifest:
        return cls.model_validate_json((model_dir / MANIFEST_NAME).read_text())

    def write(self, directory: Path) -> Path:
        path = directory / MANIFEST_NAME
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")
        return path

    def verify(self, model_dir: Path) -> None:
        """Refuse any file whose digest differs from the manifest (tampered or corrupted)."""
        for name, expected in self.sha256.items():
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


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
