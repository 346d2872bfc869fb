"""The exporter interface: an eager module and example inputs in, artifact files out.

The first returned path is the primary artifact (what the runtime loads); the rest travel
with it (e.g. ONNX external weights).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import torch

from export.formats import EXPORTERS, PRECISION_FORMATS, Format
from export.spec import ModelSpec
from handlers.manifest import Precision


class Exporter(Protocol):
    def export(
        self,
        module: torch.nn.Module,
        spec: ModelSpec,
        example: tuple[torch.Tensor, ...],
        out_dir: Path,
    ) -> list[Path]: ...


def get_exporter(fmt: Format, precision: Precision = "fp32") -> Exporter:
    """The exporter of ``fmt``, named in ``export.formats.EXPORTERS`` (imported on first use);
    formats of ``PRECISION_FORMATS`` are told the precision to compute in."""
    module_name, cls_name = EXPORTERS[fmt].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    exporter: Exporter = cls(precision=precision) if fmt in PRECISION_FORMATS else cls()
    return exporter


def dynamic_shapes(spec: ModelSpec) -> tuple[dict[int, torch.export.Dim], ...]:
    """``torch.export`` dynamic shapes: one ``Dim`` per named axis, shared across inputs."""
    dims = {name: torch.export.Dim(name, min=r.min, max=r.max) for name, r in spec.dims.items()}
    return tuple({axis: dims[name] for axis, name in t.dynamic_axes().items()} for t in spec.inputs)
