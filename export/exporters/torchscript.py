"""TorchScript via ``torch.jit.trace`` (default) or ``torch.jit.script`` (spec.torchscript).

TorchScript is deprecated upstream in favour of ``torch.export``; it stays one module here so
it can be dropped on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from export.spec import ModelSpec


class TorchScriptExporter:
    format: ClassVar[str] = "torchscript"

    def export(
        self,
        module: torch.nn.Module,
        spec: ModelSpec,
        example: tuple[torch.Tensor, ...],
        out_dir: Path,
    ) -> list[Path]:
        path = out_dir / "model.torchscript.pt"
        with torch.inference_mode(False), torch.no_grad():
            if spec.torchscript == "script":
                compiled = torch.jit.script(module)
            else:
                compiled = torch.jit.trace(module, example, check_trace=False, strict=False)
        torch.jit.save(compiled, str(path))
        return [path]
