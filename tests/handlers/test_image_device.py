"""Images decoded and resized on the worker's device (``handlers.tasks.image_device``), run here
on the CPU with ``decode_on: device`` (the same code a CUDA worker runs, on another device),
against the PIL path a CPU worker runs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from handlers.manifest import Manifest
from handlers.service import ModelService
from handlers.tasks.image_classification import ImageClassificationCodec
from tests.support.fake_context import FakeContext

LABELS = [f"class{i}" for i in range(10)]


class PooledLinear:
    """A stand-in model that answers from the image content (channel means and a coarse grid),
    so the labels depend on the pixels the preprocessing made."""

    format = "eager"
    device = torch.device("cpu")

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.weight = torch.randn(10, 3 * 4 * 4, generator=gen)

    def run(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(inputs[0].float(), 4).flatten(1)
        return (pooled @ self.weight.T).cpu()


def codec(tmp_path: Path, decode_on: str, **config: Any) -> ImageClassificationCodec:
    (tmp_path / "labels.json").write_text(json.dumps(LABELS))
    manifest = Manifest(
        model="img",
        format="eager",
        task="image_classification",
        artifact="",
        sha256={},
        task_config={"labels": "labels.json", "top_k": 3, "decode_on": decode_on, **config},
        inputs=(),
        outputs=(),
    )
    return ImageClassificationCodec(manifest, tmp_path, torch.device("cpu"))


def service(tmp_path: Path, decode_on: str, **config: Any) -> ModelService:
    c = codec(tmp_path, decode_on, **config)
    return ModelService(c.manifest, PooledLinear(), c, "img", "1.0")  # type: ignore[arg-type]


def picture(seed: int, size: tuple[int, int], fmt: str = "JPEG") -> bytes:
    """A photo-like image: smooth gradients plus noise, so resizing has detail to keep."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size[1], size[0]
    ys = torch.linspace(0, 1, h).view(h, 1).expand(h, w)
    xs = torch.linspace(0, 1, w).view(1, w).expand(h, w)
    base = torch.stack([ys, xs, (xs + ys) / 2]) * 200
    noise = torch.rand(3, h, w, generator=gen) * 55
    array = (base + noise).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


IMAGES = [picture(1, (320, 256)), picture(2, (500, 375)), picture(3, (224, 224), "PNG")]


@pytest.mark.parametrize("mode", ["center_crop", "crop", "squish"])
def test_device_path_matches_the_pil_path(tmp_path: Path, mode: str) -> None:
    config: dict[str, Any] = {"resize_mode": mode}
    if mode != "center_crop":
        config["size"] = [224, 224]
    cpu, dev = codec(tmp_path, "cpu", **config), codec(tmp_path, "device", **config)
    assert not cpu.on_device and dev.on_device
    pil_rows = [cpu.preprocess(raw) for raw in IMAGES]
    rows, failed = dev.finish([dev.device_images.check(raw) for raw in IMAGES])
    assert failed == {}
    for pil, tensor in zip(pil_rows, rows, strict=True):
        assert tensor.shape == pil.shape
        # Antialiased tensor resize vs PIL's: the same filter, other rounding. Normalised
        # values span about 4.5; a mean difference of a few hundredths is a pixel value or two.
        assert (tensor - pil).abs().mean().item() < 0.05
    model = PooledLinear()
    pil_top = model.run([torch.stack(pil_rows)]).topk(3).indices
    dev_top = model.run([torch.stack(rows)]).topk(3).indices
    assert torch.equal(pil_top[:, 0], dev_top[:, 0])


def test_a_corrupt_jpeg_fails_alone_in_its_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="handlers.tasks.image_device")
    good = IMAGES[0]
    dht = good.index(b"\xff\xc4")  # a Huffman table whose code counts overflow: PIL reads the
    corrupt = good[: dht + 5] + b"\xff" * 16 + good[dht + 21 :]  # header, decoding fails
    batch = [{"body": good}, {"body": corrupt}, {"body": IMAGES[2]}, {"body": IMAGES[1]}]
    ctx = FakeContext("")
    answers = [json.loads(a) for a in service(tmp_path, "device").handle(batch, ctx)]
    alone = [json.loads(service(tmp_path, "device").handle([b], FakeContext(""))[0]) for b in batch]
    assert [ctx.status(i) for i in range(4)] == [200, 400, 200, 200]
    assert answers[1]["message"] == "could not decode image: corrupt JPEG data"
    assert "did not decode at once" in caplog.text  # it passed the header check, failed the batch
    for i in (0, 2, 3):
        assert [a["label"] for a in answers[i]] == [a["label"] for a in alone[i]]


def test_what_is_not_an_image_is_refused_before_the_device(tmp_path: Path) -> None:
    ctx = FakeContext("")
    batch = [{"body": b"GIF89a not really"}, {"body": IMAGES[0]}]
    answers = [json.loads(a) for a in service(tmp_path, "device").handle(batch, ctx)]
    assert [ctx.status(i) for i in range(2)] == [400, 200]
    assert answers[0]["message"].startswith("could not decode image")


def test_decode_on_auto_is_the_cpu_on_a_cpu_worker(tmp_path: Path) -> None:
    assert not codec(tmp_path, "auto").on_device
    with pytest.raises(ValueError, match="decode_on must be"):
        codec(tmp_path, "gpu")
