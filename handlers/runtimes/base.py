"""The runtime interface and the loader that picks an implementation by format.

Export uses the same loaders to reload every artifact for its parity check, so what is
verified at export time is exactly what a worker runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from handlers.errors import ArtifactError

# format -> module:class, imported lazily so a TorchScript worker never imports onnxruntime.
_LOADERS = {
    "torchscript": "handlers.runtimes.torchscript:TorchScriptRuntime",
    "aoti": "handlers.runtimes.aoti:AOTInductorRuntime",
    "onnx": "handlers.runtimes.onnx:OnnxRuntime",
    "onnx_int8": "handlers.runtimes.onnx:OnnxRuntime",
    "compile": "handlers.runtimes.compiled:CompiledRuntime",
}


class Runtime(Protocol):
    """Runs a batch: a tuple of input tensors in, one output tensor out (on CPU)."""

    format: str
    device: torch.device

    def run(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor: ...


class FileRuntime(Protocol):
    """A runtime that loads from an artifact file."""

    @classmethod
    def load(cls, artifact: Path, device: torch.device) -> Runtime: ...


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch's input on ``device``. Host to GPU: from pinned memory and without waiting, so
    the copy overlaps what the host does next; the batch's one synchronisation is reading its
    output back (``.cpu()``)."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def load_runtime(fmt: str, artifact: Path, device: torch.device) -> Runtime:
    target = _LOADERS.get(fmt)
    if target is None:
        raise ArtifactError(f"unknown runtime format {fmt!r}; known: {', '.join(_LOADERS)}")
    module_name, cls_name = target.split(":")
    cls: FileRuntime = getattr(importlib.import_module(module_name), cls_name)
    return cls.load(artifact, device)
