"""A small fast.ai image classification learner, trained for one epoch in the test on images
it draws, and exported with ``learn.export()``.

Its transforms are the ones servegate serves: ``Resize((24, 32), method="crop")`` (non-square,
so the crop to the aspect ratio matters) and ``Normalize`` with ImageNet statistics. The model
is built from torch and fast.ai layers only, so the pickle names no test module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("stripes", "dots")


def _draw(kind: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
    yy, xx = np.mgrid[0:h, 0:w]
    base = (np.sin(xx / 3.0) if kind == "stripes" else np.sin(xx / 4.0) * np.sin(yy / 4.0)) > 0
    rgb = np.stack([base * 200, base[::-1] * 120, rng.integers(0, 255, (h, w))], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def export_learner(folder: Path, resize: tuple[int, int] = (24, 32)) -> Path:
    import torch
    from fastai.layers import Flatten
    from fastai.vision.all import (
        CrossEntropyLossFlat,
        ImageDataLoaders,
        Learner,
        Normalize,
        Resize,
        imagenet_stats,
    )
    from torch import nn

    images = folder / "images"
    for kind in CLASSES:
        (images / kind).mkdir(parents=True, exist_ok=True)
        for i in range(8):
            _draw(kind, hash((kind, i)) % 10_000).save(images / kind / f"{i}.png")
    torch.manual_seed(0)
    dls = ImageDataLoaders.from_folder(
        images,
        valid_pct=0.25,
        seed=0,
        item_tfms=Resize(resize, method="crop"),
        batch_tfms=Normalize.from_stats(*imagenet_stats),
        bs=4,
        num_workers=0,
    )
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        Flatten(),
        nn.Linear(8 * 16, len(CLASSES)),
    )
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat())
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2)
    target = folder / "export.pkl"
    learn.export(target)
    return target
