"""How an image becomes the model's pixel size, per the archive's ``resize_mode``.

- ``center_crop`` (default, torchvision's ImageNet evaluation transform): resize the short side
  to ``resize``, then crop the centre ``crop`` x ``crop`` square.
- ``crop`` (fast.ai's ``Resize(method="crop")`` at inference): crop the largest centred region
  with the aspect ratio of ``size`` ([height, width]), then resize it to ``size``. Unlike
  ``center_crop`` nothing is resized before the crop, so a non-square image keeps more of its
  content, and the arithmetic is fast.ai's own (integer crop box, one bilinear resize).
- ``squish``: resize to ``size`` whatever the aspect ratio (Hugging Face ViT processors,
  fast.ai's ``method="squish"``).

Resizing is PIL's bilinear resize, which is what fast.ai and torchvision do on PIL images.
"""

from __future__ import annotations

from typing import Any, Literal

from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

ResizeMode = Literal["center_crop", "crop", "squish"]
RESIZE_MODES: tuple[ResizeMode, ...] = ("center_crop", "crop", "squish")


class Resizer:
    def __init__(self, config: dict[str, Any]) -> None:
        mode = config.get("resize_mode", "center_crop")
        if mode not in RESIZE_MODES:
            raise ValueError(f"unknown resize_mode {mode!r}; known: {', '.join(RESIZE_MODES)}")
        self.mode: ResizeMode = mode
        if mode == "center_crop":
            crop = int(config.get("crop", 224))
            self.resize = int(config.get("resize", 256))
            self.height, self.width = crop, crop
        else:
            self.height, self.width = (int(v) for v in config["size"])

    def __call__(self, image: Image.Image) -> Image.Image:
        if self.mode == "center_crop":
            image = F.resize(image, [self.resize], interpolation=InterpolationMode.BILINEAR)
            cropped: Image.Image = F.center_crop(image, [self.height])
            return cropped
        if self.mode == "crop":
            image = image.crop(self.crop_box(image.width, image.height))
        resized: Image.Image = image.resize((self.width, self.height), Image.Resampling.BILINEAR)
        return resized

    def crop_box(self, w: int, h: int) -> tuple[int, int, int, int]:
        """fast.ai's centred crop to the target aspect ratio (``Resize.encodes``)."""
        scale = w / self.width if w / self.width < h / self.height else h / self.height
        crop_w, crop_h = int(scale * self.width), int(scale * self.height)
        left, top = int(0.5 * (w - crop_w)), int(0.5 * (h - crop_h))
        return left, top, min(left + crop_w, w), min(top + crop_h, h)
