"""Read a ``.mar``'s ``servegate.json`` with ``zipfile`` (no torch) and present its public
OIP v2 signature.

Text models: the manifest lists the tokenised tensors the runtime takes, but clients send text.
The public signature of a text model (``text_embedding``, ``text_classification``) is therefore
one ``BYTES`` input named ``text`` of shape ``[-1]`` (one string per element), with the
manifest's outputs. For every other task the manifest's inputs are the public ones.
"""

from __future__ import annotations

import json
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from gateway.backends.base import ModelSignature, TensorSpec

MANIFEST_NAME = "servegate.json"
TEXT_INPUT = TensorSpec("text", "BYTES", (-1,))
TEXT_TASKS = ("text_embedding", "text_classification")


def archive_file_name(model: str, version: str) -> str:
    """The archive of TorchServe model ``model`` at ``version`` in a model store: the rule of
    ``handlers.manifest.archive_file_name`` (the gateway does not import ``handlers``)."""
    return f"{model}.mar" if version == "1.0" else f"{model}.v{version}.mar"


def read_signature(mar: Path) -> ModelSignature:
    stat = mar.stat()
    return _cached(str(mar), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _cached(path: str, mtime_ns: int, size: int) -> ModelSignature:
    with zipfile.ZipFile(path) as archive:
        manifest: dict[str, Any] = json.loads(archive.read(MANIFEST_NAME))
    task = str(manifest["task"])
    outputs = tuple(_spec(t) for t in manifest["outputs"])
    if task in TEXT_TASKS:
        return ModelSignature(task, (TEXT_INPUT,), outputs)
    return ModelSignature(task, tuple(_spec(t) for t in manifest["inputs"]), outputs)


def _spec(tensor: dict[str, Any]) -> TensorSpec:
    return TensorSpec(str(tensor["name"]), str(tensor["datatype"]), tuple(tensor["shape"]))
