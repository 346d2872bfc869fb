"""Image classification: JPEG/PNG bytes in, top-k labels with probabilities out.

Native body: the raw image bytes (answer: one top-k list), or ``{"inputs": ["<base64>", ...]}``
(answer: a top-k list per image). OIP v2: one ``BYTES`` input of base64-encoded images;
outputs ``label`` (BYTES) and ``probability`` (FP32), both ``[n, k]``.
Preprocessing: resize per the archive's ``resize_mode`` (``handlers.tasks.image_resize``: by
default the ImageNet evaluation transform, short side then centre crop), scale to [0, 1],
normalise by the channel mean and std.
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
from handlers.tasks.image_resize import Resizer
from handlers.tasks.labels import TopK


class ImageClassificationCodec(TaskCodec):
    accepts = (
        "image/jpeg or image/png bytes, application/json "
        '{"inputs": ["<base64>", ...]} or an OIP v2 body'
    )

    def __init__(self, manifest: Manifest, model_dir: Path) -> None:
        super().__init__(manifest, model_dir)
        config = manifest.task_config
        self.top_k = TopK(model_dir / config["labels"], int(config.get("top_k", 5)))
        self.resizer = Resizer(config)
        self.mean = [float(v) for v in config.get("mean", (0.485, 0.456, 0.406))]
        self.std = [float(v) for v in config.get("std", (0.229, 0.224, 0.225))]
        self.max_pixels = int(config.get("max_pixels", 40_000_000))
        self.max_images = int(config.get("max_images_per_request", 64))

    def decode_native(self, body: object) -> tuple[list[Any], bool]:
        obj = json_object(body)
        if obj is None:
            if not isinstance(body, (bytes, bytearray)):
                raise BadRequest('expected raw image bytes or {"inputs": ["<base64>", ...]}')
            return [self.preprocess(bytes(body))], True
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
            rows.append(self.preprocess(raw))
        return rows

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
        return [torch.zeros(3, self.resizer.height, self.resizer.width)] * 2

    def collate(self, rows: Sequence[Any]) -> list[torch.Tensor]:
        return [torch.stack(list(rows))]

    def encode_native(self, out: torch.Tensor, single: bool) -> Any:
        return self.top_k.native(out, single)

    def encode_oip(self, out: torch.Tensor) -> list[dict[str, Any]]:
        return self.top_k.oip(out)
