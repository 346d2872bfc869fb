"""resnet18 through a real TorchServe gives the same top-5 as eager on a test-made image."""

from __future__ import annotations

import base64
import io

import pytest
import torch
from PIL import Image
from torchvision.models import ResNet18_Weights

from export.models import resnet18
from tests.support.tsclient import TorchServeClient

WEIGHTS = ResNet18_Weights.IMAGENET1K_V1  # used for its labels and eval transform, not weights


def make_image(fmt: str) -> bytes:
    size = (320, 240)
    x = torch.linspace(0, 1, size[0]).unsqueeze(0).expand(size[1], -1)
    y = torch.linspace(0, 1, size[1]).unsqueeze(1).expand(-1, size[0])
    rgb = torch.stack([x, y, (x * y).sqrt()], dim=-1).mul(255).to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()


def eager_top5(raw: bytes) -> list[tuple[str, float]]:
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    batch = WEIGHTS.transforms()(image).unsqueeze(0)
    with torch.inference_mode():
        probs = torch.softmax(resnet18.build(None)(batch), dim=-1)[0]
    values, indices = probs.topk(5)
    labels = WEIGHTS.meta["categories"]
    return [(labels[i], p) for p, i in zip(values.tolist(), indices.tolist(), strict=True)]


def assert_same_top5(served: list[dict[str, object]], expected: list[tuple[str, float]]) -> None:
    assert [s["label"] for s in served] == [label for label, _ in expected]
    for s, (_, p) in zip(served, expected, strict=True):
        assert s["probability"] == pytest.approx(p, abs=1e-4)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_raw_image_top5_matches_eager(torchserve: TorchServeClient, fmt: str) -> None:
    raw = make_image(fmt)
    resp = torchserve.predict(
        "resnet18_onnx", content=raw, headers={"Content-Type": f"image/{fmt.lower()}"}
    )
    assert resp.status_code == 200, resp.text
    assert_same_top5(resp.json(), eager_top5(raw))


def test_base64_inputs_answer_per_image(torchserve: TorchServeClient) -> None:
    images = [make_image("PNG"), make_image("JPEG")]
    body = {"inputs": [base64.b64encode(i).decode() for i in images]}
    resp = torchserve.predict("resnet18_onnx", json=body)
    assert resp.status_code == 200, resp.text
    answers = resp.json()
    assert len(answers) == 2
    for served, raw in zip(answers, images, strict=True):
        assert_same_top5(served, eager_top5(raw))


def test_undecodable_image_is_a_400(torchserve: TorchServeClient) -> None:
    resp = torchserve.predict(
        "resnet18_onnx", content=b"not an image", headers={"Content-Type": "image/png"}
    )
    assert resp.status_code == 400
    assert resp.json()["message"] == "could not decode image: UnidentifiedImageError"


def test_oip_bytes_input_answers_labels_and_probabilities(torchserve: TorchServeClient) -> None:
    raw = make_image("PNG")
    body = {
        "id": "img-1",
        "inputs": [
            {
                "name": "image",
                "shape": [1],
                "datatype": "BYTES",
                "data": [base64.b64encode(raw).decode()],
            }
        ],
    }
    resp = torchserve.predict("resnet18_onnx", json=body)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["id"] == "img-1"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["label"]["datatype"] == "BYTES"
    assert outputs["label"]["shape"] == [1, 5]
    assert outputs["probability"]["shape"] == [1, 5]
    expected = eager_top5(raw)
    assert outputs["label"]["data"] == [label for label, _ in expected]
    for got, (_, p) in zip(outputs["probability"]["data"], expected, strict=True):
        assert got == pytest.approx(p, abs=1e-4)
