"""``lightning_spec(...)``: what a LightningModule's own attributes cannot say about serving it.

A LightningModule class with its checkpoint is enough for the ``tensor`` task (inputs from
``example_input_array``, the output from one forward pass). For image or text tasks, or to name
tensors, put a spec beside the class in the module file and pass it as MODEL::

    SERVE = lightning_spec(
        MyClassifier,
        task="image_classification",
        labels=["cat", "dog"],
        task_config={"resize_mode": "crop", "size": [64, 64], "mean": [...], "std": [...]},
    )

    make export MODEL=path/module.py:SERVE CKPT=model.ckpt

This module imports neither Lightning nor torch's exporters: it only records the choices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from export.spec import DimRange, ServingConfig, Task, Tolerance


class LightningSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    module: type
    name: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$", max_length=48)
    task: Task = "tensor"
    labels: tuple[str, ...] | None = None
    task_config: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, Path] = Field(default_factory=dict, description="archive name -> file")
    input_names: tuple[str, ...] | None = None
    output_name: str = "output"
    # Inputs with dynamic axes other than the batch (e.g. "sequence"): their shapes and ranges,
    # and a function making inputs of given sizes (example_input_array has one size only).
    shapes: tuple[tuple[int | str, ...], ...] | None = None
    dims: dict[str, DimRange] = Field(default_factory=dict)
    example_inputs: Callable[[Mapping[str, int]], tuple[torch.Tensor, ...]] | None = None
    tolerance: Tolerance = Tolerance(atol=1e-5, rtol=1e-4)
    serving: ServingConfig = ServingConfig()


def lightning_spec(module: type, **fields: Any) -> LightningSpec:
    """How to serve ``module`` (a LightningModule class); fields as in ``LightningSpec``."""
    return LightningSpec(module=module, **fields)
