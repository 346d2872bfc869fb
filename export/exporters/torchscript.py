"""TorchScript via ``torch.jit.trace`` (default) or ``torch.jit.script`` (spec.torchscript).

TorchScript is deprecated upstream in favour of ``torch.export``; it stays one module here so
it can be dropped on its own.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch.jit._trace import TracerWarning

from export.spec import ModelSpec

log = logging.getLogger(__name__)
DEPRECATION = r"`torch\.jit\.\w+` is deprecated"


class TorchScriptExporter:
    def export(
        self,
        module: torch.nn.Module,
        spec: ModelSpec,
        example: tuple[torch.Tensor, ...],
        out_dir: Path,
    ) -> list[Path]:
        path = out_dir / "model.torchscript.pt"
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always", TracerWarning)
            warnings.filterwarnings("ignore", message=DEPRECATION, category=FutureWarning)
            if spec.torchscript == "script":
                compiled = torch.jit.script(module)
            else:
                compiled = torch.jit.trace(  # type: ignore[no-untyped-call]
                    module, example, check_trace=False, strict=False
                )
            torch.jit.save(compiled, str(path))
        tracer = [w for w in caught if issubclass(w.category, TracerWarning)]
        if tracer:
            # Python-level branches were frozen into the trace; parity on other shapes checks it.
            log.info("%d tracer warning(s): parts of the trace are constants", len(tracer))
            for w in tracer:
                log.debug("tracer warning at %s:%s: %s", w.filename, w.lineno, w.message)
        return [path]
