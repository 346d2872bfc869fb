"""Images for parity against a library's own prediction: PNG bytes, square and not, with
structure at every scale (gradients and a checkerboard) so that a resize or crop that differs
from the library's moves the answer."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

SIZES = {"square 96x96": (96, 96), "wide 120x90": (120, 90), "tall 64x150": (64, 150)}


def sample_images() -> dict[str, bytes]:
    return {label: _png(w, h) for label, (w, h) in SIZES.items()}


def _png(width: int, height: int) -> bytes:
    x = np.linspace(0.0, 1.0, width)[None, :].repeat(height, 0)
    y = np.linspace(0.0, 1.0, height)[:, None].repeat(width, 1)
    checker = ((np.arange(width)[None, :] // 7 + np.arange(height)[:, None] // 7) % 2).astype(float)
    rgb = np.stack([x, y, 0.5 * checker + 0.5 * x * y], axis=-1)
    buf = io.BytesIO()
    Image.fromarray((rgb * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
