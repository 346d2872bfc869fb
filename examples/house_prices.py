"""A user model for servegate: a small regressor over 8 numeric features.

Export it with:  make export MODEL=examples/house_prices.py
"""

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from export.spec import ModelSpec, TensorSpec, Tolerance


class PriceModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 64), nn.GELU(), nn.Linear(64, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def build(weights: Path | None) -> nn.Module:
    model = PriceModel()
    if weights is not None:  # WEIGHTS=path/to/weights.safetensors (or a state dict)
        from export.weights import load_state_dict

        load_state_dict(model, weights)
    return model.eval()


def example_inputs(sizes: Mapping[str, int]) -> tuple[torch.Tensor, ...]:
    return (torch.randn(sizes["batch"], 8),)


SPEC = ModelSpec(
    name="house_prices",
    task="tensor",  # raw tensors in and out: {"inputs": [[...8 numbers...]]}
    build=build,
    example_inputs=example_inputs,
    inputs=(TensorSpec(name="features", shape=("batch", 8)),),
    outputs=(TensorSpec(name="price", shape=("batch", 1)),),
    tolerance=Tolerance(atol=1e-5, rtol=1e-4),
)
