"""``compile.json``: what a ``compile`` worker needs to repeat the export's ``torch.compile``
call exactly, and the precisions a module can be served in.

Inductor's cache is keyed by the traced graph, the input shapes and dtypes (which axes are
dynamic), the Inductor options and the torch version. The export and the worker therefore both
take their options from ``compile_options`` and their dynamic axes from this file: any
difference is a cache miss (a cold compile, logged). The machine is not in that key on a CPU
(an archive exported with AVX-512 was a cache hit with the libraries held to AVX2, and ran at
a quarter of eager's speed), so the file records it (``machine_kind``) and a worker on another
kind loads no artifacts.
"""

from __future__ import annotations

import os
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


def machine_kind(device: torch.device) -> str:
    """What compiled code is built for: the GPU's name, or the CPU's vector ISA as Inductor
    picks it (``ATEN_CPU_CAPABILITY`` included) and whether the CPU has bf16 instructions."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    return f"cpu:{pick_vec_isa() or 'scalar'}{'+bf16' if native_cpu_bf16() else ''}"


def native_cpu_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware, as the libraries are allowed to use it
    (``ATEN_CPU_CAPABILITY=avx2`` or ``default`` holds Inductor and ATen below AVX-512)."""
    capped = os.environ.get("ATEN_CPU_CAPABILITY", "").lower() in {"default", "avx2"}
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return native and not capped


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
    machine: str | None = Field(default=None, description="machine_kind() of the export")
    dynamic_axes: tuple[tuple[int, ...], ...] = Field(description="per input: its dynamic axes")

    @classmethod
    def read(cls, path: Path) -> CompileSettings:
        return cls.model_validate_json(path.read_text())

    def write(self, path: Path) -> Path:
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path
