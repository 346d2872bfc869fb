"""Image classification folders (``*ForImageClassification`` with a preprocessor config).

The folder's image processor is read into the worker's image task: ``size: {height, width}``
is a plain resize (``squish``), ``size: {shortest_edge}`` with a centre crop is the ImageNet
transform (``center_crop``); bilinear resampling, rescaling by 1/255 and the processor's mean
and std. Anything else is refused by name. Parity is checked against transformers'
``image-classification`` pipeline on PNG bytes, square and not.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from export.errors import SpecError
from export.library_reference import LibraryCase, LibraryReference
from export.sources.hf.folder import HFFolder
from export.sources.hf.modules import ImageLogits
from export.sources.hf.text import _load
from export.sources.images import sample_images
from export.sources.options import SourceOptions, archive_name
from export.spec import DimRange, ModelSpec, TensorSpec, Tolerance
from export.weights import seeded

BILINEAR = 2  # PIL.Image.Resampling.BILINEAR, as processors store it


def image_spec(folder: HFFolder, options: SourceOptions) -> ModelSpec:
    labels = folder.labels()
    resize = resize_config(folder)
    height, width = resize.pop("_pixels")

    def build(weights: Path | None) -> torch.nn.Module:
        return ImageLogits(_load(folder, "AutoModelForImageClassification")).eval()

    def extra_files(scratch: Path) -> dict[str, Path]:
        path = scratch / "labels.json"
        path.write_text(json.dumps(labels))
        return {"labels.json": path}

    def example_inputs(sizes: Mapping[str, int]) -> tuple[torch.Tensor, ...]:
        batch = sizes["batch"]
        return (torch.randn(batch, 3, height, width, generator=seeded(batch)),)

    return ModelSpec(
        name=archive_name(options, folder.path.resolve().name),
        task="image_classification",
        build=build,
        example_inputs=example_inputs,
        inputs=(TensorSpec(name="pixels", shape=("batch", 3, height, width)),),
        outputs=(TensorSpec(name="logits", shape=("batch", len(labels))),),
        dims={"batch": DimRange(min=1, max=256, export=2, check=(1, 3, 5))},
        tolerance=Tolerance(atol=1e-3, rtol=1e-3),
        task_config={"labels": "labels.json", "top_k": min(5, len(labels)), **resize},
        extra_files=extra_files,
        library_reference=lambda: _pipeline_reference(folder, labels),
    )


def resize_config(folder: HFFolder) -> dict[str, Any]:
    """The image task's settings for the folder's processor (``_pixels``: model input size)."""
    proc = folder.json("preprocessor_config.json")
    name = proc.get("image_processor_type", "no preprocessor_config.json")
    size = proc.get("size") or {}
    refuse = f"hf:{folder.path}: the image processor ({name}) "
    if not proc.get("do_resize", False) or proc.get("resample", BILINEAR) != BILINEAR:
        raise SpecError(refuse + "must resize with bilinear resampling (resample=2)")
    if abs(float(proc.get("rescale_factor", 0)) - 1 / 255) > 1e-9 or not proc.get("do_rescale"):
        raise SpecError(refuse + "must rescale pixels by 1/255")
    config: dict[str, Any] = {"mean": [0.0] * 3, "std": [1.0] * 3}
    if proc.get("do_normalize"):
        config = {"mean": list(proc["image_mean"]), "std": list(proc["image_std"])}
    if "height" in size and "width" in size and not proc.get("do_center_crop"):
        pixels = (int(size["height"]), int(size["width"]))
        return {**config, "resize_mode": "squish", "size": list(pixels), "_pixels": pixels}
    crop = proc.get("crop_size") or {}
    if (
        "shortest_edge" in size
        and proc.get("do_center_crop")
        and crop.get("height") == crop.get("width")
    ):
        side = int(crop["height"])
        return {
            **config,
            "resize_mode": "center_crop",
            "resize": int(size["shortest_edge"]),
            "crop": side,
            "_pixels": (side, side),
        }
    raise SpecError(
        refuse + f"resizes as size={size}, do_center_crop={proc.get('do_center_crop')}, "
        f"crop_size={crop or None}; servegate serves size {{height, width}} without a crop, "
        "or shortest_edge with a square centre crop"
    )


def _pipeline_reference(folder: HFFolder, labels: list[str]) -> LibraryReference:
    from PIL import Image
    from transformers import pipeline

    classify = pipeline("image-classification", model=str(folder.path), device="cpu")
    cases = []
    for label, raw in sample_images().items():
        answer = classify(Image.open(io.BytesIO(raw)), top_k=None)
        probs = [next(a["score"] for a in answer if a["label"] == name) for name in labels]
        cases.append(LibraryCase(label, (raw,), torch.tensor([probs])))
    return LibraryReference(
        library="transformers image-classification pipeline",
        cases=tuple(cases),
        activation="softmax",
        atol=1e-3,
    )
