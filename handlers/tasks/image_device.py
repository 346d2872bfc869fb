"""Images decoded and resized on the worker's device, in batches.

On a GPU worker the CPU work per image (decoding a JPEG, resizing it with PIL) is what limits
an image model served one image per request, not the model. Here a request's image is only
checked on the CPU (its header: format, size, decompression bomb), and the whole TorchServe
batch is decoded at once by ``torchvision.io.decode_jpeg`` on the device (nvJPEG on CUDA),
then resized, cropped and normalised there. PNG and other formats are decoded by PIL on the
CPU and join the batch on the device.

One bad image never fails its neighbours: a batched decode that raises is retried image by
image, and only the images that fail alone are refused (their request's 400).

Resizing here is torchvision's tensor resize (bilinear, antialiased), close to but not the same
arithmetic as PIL's (the CPU path): ``tests/handlers/test_image_device.py`` bounds the
difference and checks the top-k labels agree.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from handlers.errors import BadRequest
from handlers.tasks.image_resize import Resizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedImage:
    """An image checked by its header, still encoded."""

    raw: bytes
    jpeg: bool


class DeviceImages:
    def __init__(
        self,
        resizer: Resizer,
        mean: list[float],
        std: list[float],
        max_pixels: int,
        device: torch.device,
    ) -> None:
        self.resizer = resizer
        self.max_pixels = max_pixels
        self.device = device
        self.mean = torch.tensor(mean, device=device).view(3, 1, 1)
        self.std = torch.tensor(std, device=device).view(3, 1, 1)

    def check(self, raw: bytes) -> EncodedImage:
        """The CPU's part: read the header only; 400 for what is not an image or too large."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                opened = Image.open(io.BytesIO(raw))
                if opened.width * opened.height > self.max_pixels:
                    raise BadRequest(f"image of {opened.width}x{opened.height} pixels is too large")
                jpeg = opened.format == "JPEG" and opened.mode in ("RGB", "L", "CMYK")
        except (UnidentifiedImageError, OSError, Image.DecompressionBombWarning) as exc:
            raise BadRequest(f"could not decode image: {type(exc).__name__}") from None
        return EncodedImage(raw, jpeg)

    def finish(self, rows: list[Any]) -> tuple[list[Any], dict[int, BadRequest]]:
        """Decode, resize and normalise every image of a batch on the device."""
        decoded, failed = self._decode(rows)
        out: list[Any] = list(rows)
        for i, image in decoded.items():
            out[i] = self._normalise(self._resize(image))
        return out, failed

    def _decode(self, rows: list[Any]) -> tuple[dict[int, torch.Tensor], dict[int, BadRequest]]:
        decoded: dict[int, torch.Tensor] = {}
        failed: dict[int, BadRequest] = {}
        jpegs = [i for i, row in enumerate(rows) if row.jpeg]
        if jpegs:
            decoded.update(self._decode_jpegs(rows, jpegs, failed))
        for i, row in enumerate(rows):
            if not row.jpeg:
                try:
                    decoded[i] = self._decode_cpu(row.raw)
                except BadRequest as exc:
                    failed[i] = exc
        return decoded, failed

    def _decode_jpegs(
        self, rows: list[Any], idx: list[int], failed: dict[int, BadRequest]
    ) -> dict[int, torch.Tensor]:
        data = [torch.frombuffer(bytearray(rows[i].raw), dtype=torch.uint8) for i in idx]
        try:
            images = decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
            return dict(zip(idx, images, strict=True))
        except RuntimeError:
            log.info("a batch of %d JPEGs did not decode at once; decoding one by one", len(idx))
        out = {}
        for i, one in zip(idx, data, strict=True):
            try:
                [image] = decode_jpeg([one], mode=ImageReadMode.RGB, device=self.device)
                out[i] = image
            except RuntimeError:
                failed[i] = BadRequest("could not decode image: corrupt JPEG data")
        return out

    def _decode_cpu(self, raw: bytes) -> torch.Tensor:
        try:
            image = Image.open(io.BytesIO(raw)).convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise BadRequest(f"could not decode image: {type(exc).__name__}") from None
        tensor: torch.Tensor = F.pil_to_tensor(image)
        return tensor.to(self.device)

    def _resize(self, image: torch.Tensor) -> torch.Tensor:
        r = self.resizer
        bilinear = InterpolationMode.BILINEAR
        if r.mode == "center_crop":
            resized = F.resize(image, [r.resize], interpolation=bilinear, antialias=True)
            cropped: torch.Tensor = F.center_crop(resized, [r.height])
            return cropped
        if r.mode == "crop":
            left, top, right, bottom = r.crop_box(image.shape[-1], image.shape[-2])
            image = image[:, top:bottom, left:right]
        squished: torch.Tensor = F.resize(
            image, [r.height, r.width], interpolation=bilinear, antialias=True
        )
        return squished

    def _normalise(self, image: torch.Tensor) -> torch.Tensor:
        return (image.float() / 255.0 - self.mean) / self.std
