"""Eager PyTorch: the reference every exported format is checked and timed against."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from handlers.runtimes.base import to_device


class EagerRuntime:
    format = "eager"

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        self.device = device
        self._module = module.to(device).eval()

    def run(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            out = self._module(*(to_device(t, self.device) for t in inputs))
        return out.cpu() if isinstance(out, torch.Tensor) else out[0].cpu()
