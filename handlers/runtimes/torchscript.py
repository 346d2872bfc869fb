"""TorchScript (``torch.jit``) artifacts."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from handlers.runtimes.base import to_device


class TorchScriptRuntime:
    format = "torchscript"

    def __init__(self, module: torch.jit.ScriptModule, device: torch.device) -> None:
        self.device = device
        self._module = module

    @classmethod
    def load(cls, artifact: Path, device: torch.device) -> TorchScriptRuntime:
        with warnings.catch_warnings():
            # TorchScript's deprecation is known and documented; don't repeat it per worker.
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated")
            module = torch.jit.load(str(artifact), map_location=device)  # type: ignore[no-untyped-call]
        module.eval()
        return cls(module, device)

    def run(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        # The profiling executor re-specialises the graph for every new input shape; with the
        # varying batch/sequence shapes of serving that cost more than it saved (MiniLM on CPU,
        # 20 mixed shapes: 512 ms optimised vs 331 ms without).
        with torch.inference_mode(), torch.jit.optimized_execution(False):  # type: ignore[attr-defined]
            out: torch.Tensor = self._module(*(to_device(t, self.device) for t in inputs))
        return out.cpu()
