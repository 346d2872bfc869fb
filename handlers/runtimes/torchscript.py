"""TorchScript (``torch.jit``) artifacts."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch


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
        with torch.inference_mode():
            out: torch.Tensor = self._module(*(t.to(self.device) for t in inputs))
        return out.cpu()
