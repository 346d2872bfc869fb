"""Image classification: JPEG/PNG bytes in, top-k labels with probabilities out.

Native body: the raw image bytes (answer: one top-k list), or ``{"inputs": ["<base64>", ...]}``
(answer: a top-k list per image). OIP v2: one ``BYTES`` input of base64-encoded images;
outputs ``label`` (BYTES) and ``probability`` (FP32), both ``[n, k]``.
Preprocessing: resize per the archive's ``resize_mode`` (``handlers.tasks.image_resize``: by
default the ImageNet evaluation transform, short side then centre crop), scale to [0, 1],
normalise by the channel mean and std. On a CUDA worker (``decode_on: auto``, the default) a
whole batch is decoded and resized on the GPU (``handlers.tasks.image_device``); ``decode_on:
cpu`` keeps PIL on the CPU, ``device`` decodes on the worker's device whatever it is.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import functional as F

from handlers.errors import BadRequest
from handlers.manifest import Manifest
from handlers.oip import OipTensor
from handlers.tasks.base import TaskCodec
from handlers.tasks.body import json_object, native_inputs
from handlers.tasks.image_device import DeviceImages
from handlers.tasks.image_resize import Resizer
from handlers.tasks.labels import TopK


class ImageClassificationCodec(TaskCodec):
    accepts = (
        "image/jpeg or image/png bytes, application/json "
        '{"inputs": ["<base64>", ...]} or an OIP v2 body'
    )

    def __init__(
        self, manifest: Manifest, model_dir: Path, device: torch.device | None = None
    ) -> None:
        super().__init__(manifest, model_dir, device)
        config = manifest.task_config
        self.top_k = TopK(model_dir / config["labels"], int(config.get("top_k", 5)))
        self.resizer = Resizer(config)
        self.mean = [float(v) for v in config.get("mean", (0.485, 0.456, 0.406))]
        self.std = [float(v) for v in config.get("std", (0.229, 0.224, 0.225))]
        self.max_pixels = int(config.get("max_pixels", 40_000_000))
        self.max_images = int(config.get("max_images_per_request", 64))
        self.on_device = _decode_on_device(str(config.get("decode_on", "auto")), self.device)
        self.device_images = DeviceImages(
            self.resizer, self.mean, self.std, self.max_pixels, self.device
        )

    def decode_native(self, body: object) -> tuple[list[Any], bool]:
        obj = json_object(body)
        if obj is None:
            if not isinstance(body, (bytes, bytearray)):
                raise BadRequest('expected raw image bytes or {"inputs": ["<base64>", ...]}')
            return [self._row(bytes(body))], True
        return self._from_base64(native_inputs(obj)), False

    def decode_oip(self, inputs: Sequence[OipTensor]) -> list[Any]:
        if len(inputs) != 1 or inputs[0].datatype != "BYTES":
            raise BadRequest("image classification takes one BYTES input of base64 images")
        return self._from_base64(inputs[0].data)

    def _from_base64(self, items: list[Any]) -> list[torch.Tensor]:
        if len(items) > self.max_images:
            raise BadRequest(f"at most {self.max_images} images per request, got {len(items)}")
        rows = []
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise BadRequest(f"image {i}: expected a base64 string")
            try:
                raw = base64.b64decode(item, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest(f"image {i}: not valid base64") from None
            rows.append(self._row(raw))
        return rows

    def _row(self, raw: bytes) -> Any:
        return self.device_images.check(raw) if self.on_device else self.preprocess(raw)

    def finish(self, rows: list[Any]) -> tuple[list[Any], dict[int, BadRequest]]:
        if not self.on_device:
            return rows, {}
        return self.device_images.finish(rows)

    def preprocess(self, raw: bytes) -> torch.Tensor:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                opened = Image.open(io.BytesIO(raw))
                if opened.width * opened.height > self.max_pixels:
                    raise BadRequest(f"image of {opened.width}x{opened.height} pixels is too large")
                image = opened.convert("RGB")
        except (UnidentifiedImageError, OSError, Image.DecompressionBombWarning) as exc:
            raise BadRequest(f"could not decode image: {type(exc).__name__}") from None
        image = self.resizer(image)
        tensor = F.convert_image_dtype(F.pil_to_tensor(image), torch.float32)
        normalized: torch.Tensor = F.normalize(tensor, mean=self.mean, std=self.std)
        return normalized

    def example_rows(self) -> list[Any]:
        shape = (3, self.resizer.height, self.resizer.width)
        return [torch.zeros(shape, device=self.device if self.on_device else None)] * 2

    def collate(self, rows: Sequence[Any]) -> list[torch.Tensor]:
        return [torch.stack(list(rows))]

    def encode_native(self, out: torch.Tensor, single: bool) -> Any:
        return self.top_k.native(out, single)

    def encode_oip(self, out: torch.Tensor) -> list[dict[str, Any]]:
        return self.top_k.oip(out)


def _decode_on_device(choice: str, device: torch.device) -> bool:
    """``decode_on`` in the archive's task config: ``auto`` (on a CUDA worker), ``device`` or
    ``cpu``."""
    if choice not in ("auto", "device", "cpu"):
        raise ValueError(f"decode_on must be auto, device or cpu, not {choice!r}")
    return choice == "device" or (choice == "auto" and device.type == "cuda")
