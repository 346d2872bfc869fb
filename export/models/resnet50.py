"""torchvision's ResNet-50 for image classification over the 1,000 ImageNet labels.

The GPU benchmark's image model (``bench.gpu``). Random (seeded) weights unless ``WEIGHTS=path``
names a safetensors file or a weights-only state dict: nothing is downloaded. Pre- and
post-processing are ResNet-18's (``export.models.resnet18``).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from export.models.resnet18 import build_torchvision, image_classifier


def build(weights: Path | None) -> nn.Module:
    return build_torchvision("resnet50", weights)


SPEC = image_classifier("resnet50", build, max_batch=1024)
