"""torchvision's ResNet-50 for image classification over the 1,000 ImageNet labels.

The GPU benchmark's image model (``bench.gpu``). Random (seeded) weights unless ``WEIGHTS=path``
names a safetensors file or a weights-only state dict: nothing is downloaded. Pre- and
post-processing are ResNet-18's (``export.models.resnet18``).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from export.models.resnet18 import CROP, build_torchvision, example_inputs, extra_files
from export.spec import DimRange, ModelSpec, ServingConfig, TensorSpec, Tolerance

# Multiply-adds per 224x224 image: 4.09 G (torchvision's model card), so ~8.2 GFLOP.
FLOPS_PER_IMAGE = 8.18e9


def build(weights: Path | None) -> nn.Module:
    return build_torchvision("resnet50", weights)


SPEC = ModelSpec(
    name="resnet50",
    task="image_classification",
    build=build,
    example_inputs=example_inputs,
    inputs=(TensorSpec(name="pixels", shape=("batch", 3, CROP, CROP)),),
    outputs=(TensorSpec(name="logits", shape=("batch", 1000)),),
    dims={"batch": DimRange(min=1, max=1024, export=2, check=(1, 3, 5))},
    tolerance=Tolerance(atol=1e-3, rtol=1e-3),
    task_config={"labels": "labels.json", "top_k": 5, "resize": 256, "crop": CROP},
    extra_files=extra_files,
    serving=ServingConfig(batch_size=8, max_batch_delay_ms=5),
)
