"""AOTInductor ``.pt2`` packages (``torch._inductor.aoti_load_package``).

TorchServe 0.12's stock handler only knows the deprecated ``.so`` form; this loads the
current package format. A package is compiled for one device kind: a CPU build runs on CPU
even in a GPU worker, and says so in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch._inductor import aoti_load_package

from handlers.runtimes.base import to_device

log = logging.getLogger(__name__)


class AOTInductorRuntime:
    format = "aoti"

    def __init__(self, fn: Callable[..., object], device: torch.device) -> None:
        self.device = device
        self._fn = fn

    @classmethod
    def load(cls, artifact: Path, device: torch.device) -> AOTInductorRuntime:
        fn = aoti_load_package(str(artifact))
        compiled_for = _package_device(fn)
        if compiled_for.type != device.type:
            log.warning(
                "%s was compiled for %s; running it there instead of %s",
                artifact.name,
                compiled_for,
                device,
            )
        return cls(fn, compiled_for)

    def run(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            out = self._fn(*(to_device(t, self.device) for t in inputs))
        tensor = out if isinstance(out, torch.Tensor) else out[0]  # type: ignore[index]
        assert isinstance(tensor, torch.Tensor)
        return tensor.cpu()


def _package_device(fn: object) -> torch.device:
    loader = getattr(fn, "loader", None)
    metadata = loader.get_metadata() if loader is not None else {}
    return torch.device("cuda" if metadata.get("AOTI_DEVICE_KEY") == "cuda" else "cpu")
