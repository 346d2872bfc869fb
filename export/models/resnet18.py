"""torchvision's ResNet-18 for image classification over the 1,000 ImageNet labels.

Random (seeded) weights unless ``WEIGHTS=path`` names a safetensors file or a weights-only
state dict: nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from export.spec import DimRange, ModelSpec, ServingConfig, TensorSpec, Tolerance
from export.weights import load_state_dict, seeded

CROP = 224


def build(weights: Path | None) -> nn.Module:
    return build_torchvision("resnet18", weights)


def build_torchvision(arch: str, weights: Path | None) -> nn.Module:
    """torchvision's ``arch`` with seeded random weights, or ``weights`` loaded over them."""
    import torchvision.models

    with torch.random.fork_rng():
        torch.manual_seed(0)
        module: nn.Module = getattr(torchvision.models, arch)(weights=None)
    if weights is not None:
        load_state_dict(module, weights)
    return module.eval()


def example_inputs(sizes: Mapping[str, int]) -> tuple[torch.Tensor, ...]:
    batch = sizes["batch"]
    return (torch.randn(batch, 3, CROP, CROP, generator=seeded(batch)),)


def extra_files(scratch: Path) -> dict[str, Path]:
    # The label names ship inside torchvision's code (no download).
    from torchvision.models import ResNet18_Weights

    labels = scratch / "labels.json"
    labels.write_text(json.dumps(ResNet18_Weights.IMAGENET1K_V1.meta["categories"]))
    return {"labels.json": labels}


def image_classifier(
    name: str, build: Callable[[Path | None], nn.Module], max_batch: int
) -> ModelSpec:
    """The spec every torchvision ImageNet classifier here shares: 224x224 pixels in, 1,000
    logits out, ResNet-18's pre- and post-processing."""
    return ModelSpec(
        name=name,
        task="image_classification",
        build=build,
        example_inputs=example_inputs,
        inputs=(TensorSpec(name="pixels", shape=("batch", 3, CROP, CROP)),),
        outputs=(TensorSpec(name="logits", shape=("batch", 1000)),),
        dims={"batch": DimRange(min=1, max=max_batch, export=2, check=(1, 3, 5))},
        tolerance=Tolerance(atol=1e-3, rtol=1e-3),
        task_config={"labels": "labels.json", "top_k": 5, "resize": 256, "crop": CROP},
        extra_files=extra_files,
        serving=ServingConfig(batch_size=8, max_batch_delay_ms=5),
    )


SPEC = image_classifier("resnet18", build, max_batch=256)
