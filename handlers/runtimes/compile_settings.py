"""``compile.json``: what a ``compile`` worker needs to repeat the export's ``torch.compile``
call exactly, and the precisions a module can be served in.

Inductor's cache is keyed by the traced graph, the input shapes and dtypes (which axes are
dynamic), the Inductor options, the torch version and the machine (CPU ISA, GPU kind). The
export and the worker therefore both take their options from ``compile_options`` and their
dynamic axes from this file: any difference is a cache miss (a cold compile, logged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16")
DTYPES: dict[Precision, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
SETTINGS_NAME = "compile.json"


def compile_options(device_type: str) -> dict[str, Any]:
    """Inductor options for a worker on ``device_type``: freezing (weights folded into the
    graph as constants: inference only) everywhere, CUDA graphs on a GPU, where one replay per
    batch size served replaces the launch of every kernel."""
    options: dict[str, Any] = {"freezing": True}
    if device_type == "cuda":
        options["triton.cudagraphs"] = True
    return options


class CompileSettings(BaseModel):
    """Written by the export beside the module's code, weights and Inductor cache."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec_file: str = Field(description="the spec's Python file in the archive")
    spec_attr: str = Field(description="the ModelSpec attribute of that file")
    weights: str = Field(description="safetensors state dict of the module")
    cache: str = Field(description="torch.compiler.save_cache_artifacts() bytes")
    precision: Precision = "fp32"
    device_type: str = Field(description="the device the cache was compiled for")
    torch_version: str = Field(description="torch that wrote the cache")
    dynamic_axes: tuple[tuple[int, ...], ...] = Field(description="per input: its dynamic axes")

    @classmethod
    def read(cls, path: Path) -> CompileSettings:
        return cls.model_validate_json(path.read_text())

    def write(self, path: Path) -> Path:
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path
