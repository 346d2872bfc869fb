"""A small fast.ai image classification learner, trained for one epoch in the test on images
it draws, and exported with ``learn.export()``; and a text classifier, exported untrained.

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


def export_text_learner(folder: Path) -> Path:
    """fast.ai's text classifier (AWD-LSTM, not pretrained, so nothing is downloaded; shrunk to
    a 200 KB pickle) on a 16-row DataFrame, tokenised by fast.ai's default spaCy tokenizer
    (``spacy.blank("en")``: no language model to download). Exported untrained: what servegate
    reads from it does not depend on the weights."""
    import pandas as pd
    from fastai.text.all import AWD_LSTM, TextDataLoaders, text_classifier_learner

    reviews = pd.DataFrame(
        {
            "text": ["a good movie", "a bad movie", "great fun", "an awful plot"] * 4,
            "label": ["pos", "neg", "pos", "neg"] * 4,
        }
    )
    dls = TextDataLoaders.from_df(
        reviews, text_col="text", label_col="label", valid_pct=0.25, seed=0, bs=4, num_workers=0
    )
    config = {"emb_sz": 8, "n_hid": 8, "n_layers": 1}
    learn = text_classifier_learner(dls, AWD_LSTM, pretrained=False, config=config, lin_ftrs=[4])
    target = folder / "text.pkl"
    learn.export(target)
    return target
