"""AOTInductor: ``torch.export`` with dynamic shapes, compiled ahead of time into a ``.pt2``.

This is the torch.compile artifact: Inductor-generated kernels in a package that
``torch._inductor.aoti_load_package`` loads without Python tracing at serve time.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch._inductor import aoti_compile_and_package

from export.exporters.base import dynamic_shapes
from export.spec import ModelSpec


class AOTInductorExporter:
    def export(
        self,
        module: torch.nn.Module,
        spec: ModelSpec,
        example: tuple[torch.Tensor, ...],
        out_dir: Path,
    ) -> list[Path]:
        path = out_dir / "model.pt2"
        with torch.no_grad():
            program = torch.export.export(
                module, example, dynamic_shapes=dynamic_shapes(spec), strict=False
            )
            aoti_compile_and_package(program, package_path=str(path))
        return [path]
