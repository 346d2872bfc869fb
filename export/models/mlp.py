"""A tiny tensor-in/tensor-out model for fast tests: 16 features -> 4 outputs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from export.spec import ModelSpec, TensorSpec, Tolerance
from export.weights import load_state_dict, seeded

IN_FEATURES = 16
OUT_FEATURES = 4


def build(weights: Path | None) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)  # reproducible random weights: tests rebuild the same model
        module = nn.Sequential(nn.Linear(IN_FEATURES, 32), nn.ReLU(), nn.Linear(32, OUT_FEATURES))
    if weights is not None:
        load_state_dict(module, weights)
    return module.eval()


def example_inputs(sizes: Mapping[str, int]) -> tuple[torch.Tensor, ...]:
    batch = sizes["batch"]
    return (torch.randn(batch, IN_FEATURES, generator=seeded(batch)),)


SPEC = ModelSpec(
    name="mlp",
    task="tensor",
    build=build,
    example_inputs=example_inputs,
    inputs=(TensorSpec(name="features", shape=("batch", IN_FEATURES)),),
    outputs=(TensorSpec(name="scores", shape=("batch", OUT_FEATURES)),),
    tolerance=Tolerance(atol=1e-5, rtol=1e-4),
)
