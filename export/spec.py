"""What servegate needs to know about a model to export, verify and serve it.

A user model is described by a ``ModelSpec`` in a Python file (``MODEL=path/to/spec.py``,
attribute ``SPEC``) or a module attribute (``MODEL=package.module:attr``). See docs/export.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from export.library_reference import LibraryReference

Task = Literal[
    "text_embedding", "text_classification", "image_classification", "tensor", "text_generation"
]
# Tasks whose requests are texts, tokenised in the worker (``handlers.tasks.texts``).
TEXT_TASKS = ("text_embedding", "text_classification")
DType = Literal["float32", "float16", "bfloat16", "int64", "int32", "bool"]

OIP_DATATYPE = {
    "float32": "FP32",
    "float16": "FP16",
    "bfloat16": "BF16",
    "int64": "INT64",
    "int32": "INT32",
    "bool": "BOOL",
}

BATCH = "batch"


class TensorSpec(BaseModel):
    """One input or output. A ``str`` axis is dynamic and named (``"batch"``, ``"sequence"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    dtype: DType = "float32"
    shape: tuple[int | str, ...]

    @field_validator("shape")
    @classmethod
    def _batch_first(cls, shape: tuple[int | str, ...]) -> tuple[int | str, ...]:
        if not shape or shape[0] != BATCH:
            raise ValueError(f'the first axis must be the dynamic "{BATCH}" axis, got {shape}')
        return shape

    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}


class Tolerance(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    atol: float = Field(default=1e-4, gt=0)
    rtol: float = Field(default=1e-4, ge=0)
    # Quantised formats (onnx_int8) are checked by cosine similarity to eager, row by row.
    min_cosine: float = Field(default=0.99, gt=0, le=1)


class DimRange(BaseModel):
    """Range of a named dynamic axis, for ``torch.export`` (its example size lies inside)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min: int = Field(default=1, ge=1)
    max: int = Field(default=1024, ge=2)
    export: int = Field(default=2, ge=2, description="size used to trace/export")
    check: tuple[int, ...] = Field(default=(1, 3, 5), description="sizes used for parity")


class ServingConfig(BaseModel):
    """Written into the archive's ``model-config.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: int = Field(default=8, ge=1)
    max_batch_delay_ms: int = Field(default=5, ge=0)
    min_workers: int = Field(default=1, ge=1)
    max_workers: int = Field(default=1, ge=1)
    response_timeout_s: int = Field(default=120, ge=1)


class TransformerInfo(BaseModel):
    """Set for transformer encoders: enables onnxruntime's transformer graph optimisation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_type: Literal["bert"] = "bert"
    num_heads: int = Field(ge=1)
    hidden_size: int = Field(ge=1)


class ModelSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=48)
    task: Task
    build: Callable[[Path | None], torch.nn.Module] = Field(
        description="weights path (or None for the default weights) -> module in eval mode"
    )
    example_inputs: Callable[[Mapping[str, int]], tuple[torch.Tensor, ...]] = Field(
        description="sizes of the named dynamic axes -> one tensor per input"
    )
    inputs: tuple[TensorSpec, ...] = Field(min_length=1)
    outputs: tuple[TensorSpec, ...] = Field(min_length=1, max_length=1)
    dims: dict[str, DimRange] = Field(default_factory=lambda: {BATCH: DimRange()})
    tolerance: Tolerance = Tolerance()
    task_config: dict[str, Any] = Field(default_factory=dict)
    extra_files: Callable[[Path], dict[str, Path]] = Field(
        default=lambda scratch: {},
        description="scratch dir -> {archive file name: source file} (tokenizer, labels)",
    )
    torchscript: Literal["trace", "script"] = "trace"
    serving: ServingConfig = ServingConfig()
    transformer: TransformerInfo | None = None
    timing_sizes: dict[str, int] = Field(
        default_factory=dict, description="sizes of non-batch dynamic axes when timing"
    )
    library_reference: Callable[[], LibraryReference] | None = Field(
        default=None,
        description="the model's own library's answers on real request bodies (BYOM sources)",
    )

    @model_validator(mode="after")
    def _dims_declared(self) -> ModelSpec:
        used = {d for t in self.inputs for d in t.dynamic_axes().values()}
        missing = used - set(self.dims)
        if missing:
            raise ValueError(f"dynamic axes {sorted(missing)} need a range in `dims`")
        return self

    def sizes(self, **override: int) -> dict[str, int]:
        """Export sizes of every dynamic axis, with some overridden."""
        return {name: override.get(name, r.export) for name, r in self.dims.items()}

    def check_sizes(self) -> list[dict[str, int]]:
        """Parity inputs: every axis at sizes other than its export size."""
        longest = max(len(r.check) for r in self.dims.values())
        return [
            {name: r.check[i % len(r.check)] for name, r in self.dims.items()}
            for i in range(longest)
        ]
