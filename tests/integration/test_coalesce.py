"""Coalescing in front of a real TorchServe: concurrent single-item requests through a route
with ``coalesce`` get the answers the same requests get alone through a route without it, from
the real handler's multi-item answers split back (MiniLM texts, one cut to the model's window;
a text the worker refuses; mlp OIP v2 rows; resnet18 JPEGs sent as bytes and as base64 JSON,
one of them corrupt)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.gateway.support import post_all, run_gateway, ts_backend, variant, write_config
from tests.support.tsclient import TorchServeClient

pytestmark = pytest.mark.integration
COALESCE = {"max_items": 8, "max_wait_ms": 300}
LONG = " ".join(["The quick brown fox jumps over the lazy dog."] * 80)  # past 256 tokens
TEXTS = ["Hello world", LONG, "Ünïcödé café 日本語", "short", "A served embedding.", "last"]


def close(got: Any, expected: Any) -> bool:
    """Equal JSON, floats within 1e-5 (the rows of a batch are padded together)."""
    if isinstance(expected, float):
        return isinstance(got, (int, float)) and abs(got - expected) <= 1e-5
    if isinstance(expected, list):
        return (
            isinstance(got, list)
            and len(got) == len(expected)
            and all(close(g, e) for g, e in zip(got, expected, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and got.keys() == expected.keys()
            and all(close(got[k], expected[k]) for k in expected)
        )
    return bool(got == expected)


def same_answer(got: httpx.Response, expected: httpx.Response, *, route: str = "") -> None:
    assert got.status_code == expected.status_code, (got.text, expected.text)
    assert got.headers["content-type"] == expected.headers["content-type"]
    reference = expected.json()
    if route and isinstance(reference, dict) and "model_name" in reference:
        reference["model_name"] = route  # the public name is the route's
    assert close(got.json(), reference), (got.text[:300], expected.text[:300])


def paired_routes(**models: str) -> dict[str, Any]:
    """Per public name, a route to the model that coalesces, and ``<name>_alone`` that does not
    (the reference answers)."""
    routes: dict[str, Any] = {}
    for name, model in models.items():
        routes[name] = {"variants": [variant("s", model, 100)], "coalesce": COALESCE}
        routes[f"{name}_alone"] = {"variants": [variant("s", model, 100)]}
    return routes


def jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    size = (96 + 16 * i, 80 + 8 * i)
    Image.radial_gradient("L").resize(size).convert("RGB").rotate(30 * i).save(buf, "JPEG")
    return buf.getvalue()


def test_coalesced_images_equal_uncoalesced_images(
    tmp_path: Path, torchserve: TorchServeClient
) -> None:
    routes = paired_routes(resnet="resnet18_onnx")
    config = write_config(tmp_path / "gateway.yaml", {"ts": ts_backend(torchserve)}, routes)
    images = [jpeg(i) for i in range(5)]
    images.insert(2, b"\xff\xd8\xff not a jpeg")  # refused by the worker: its own 400 only
    as_json = [{"inputs": [base64.b64encode(image).decode()]} for image in images]
    with run_gateway(config) as gw, gw.client() as client:
        headers = {"Content-Type": "image/jpeg"}
        got = post_all(f"{gw.url}/predictions/resnet", list(images), headers)
        assert [a.status_code for a in got] == [200, 200, 400, 200, 200, 200]
        for image, answer in zip(images, got, strict=True):
            alone = client.post("/predictions/resnet_alone", content=image, headers=headers)
            same_answer(answer, alone)
        got = post_all(f"{gw.url}/predictions/resnet", as_json)
        for body, answer in zip(as_json, got, strict=True):
            same_answer(answer, client.post("/predictions/resnet_alone", json=body))
        joined = {"route": "resnet", "variant": "s", "reason": "client_error"}
        assert gw.metric("servegate_coalesce_fallbacks_total", **joined) >= 2


def test_coalesced_answers_equal_uncoalesced_answers(
    tmp_path: Path, torchserve: TorchServeClient
) -> None:
    routes = paired_routes(minilm="minilm_torchscript", mlp="mlp_torchscript")
    config = write_config(tmp_path / "gateway.yaml", {"ts": ts_backend(torchserve)}, routes)
    texts: list[Any] = [{"inputs": [t]} for t in TEXTS]
    with_bad = [*texts[:3], {"inputs": [42]}, *texts[3:]]  # 42: refused by the worker
    rows = [
        {"id": f"r{i}", "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 16]}]}
        for i in range(6)
    ]
    for i, row in enumerate(rows):
        row["inputs"][0]["data"] = [(i - j) / 8 for j in range(16)]
    with run_gateway(config) as gw, gw.client() as client:
        got = post_all(f"{gw.url}/predictions/minilm", texts)
        for sent, answer in zip(texts, got, strict=True):
            same_answer(answer, client.post("/predictions/minilm_alone", json=sent))
        assert got[1].json()["truncated"] == [0]  # the long text, as it is told alone
        joined = {"route": "minilm", "variant": "s"}
        assert gw.metric("servegate_coalesce_items_count", **joined) < len(texts)

        got = post_all(f"{gw.url}/predictions/minilm", with_bad)
        for sent, answer in zip(with_bad, got, strict=True):
            same_answer(answer, client.post("/predictions/minilm_alone", json=sent))
        assert [a.status_code for a in got] == [200, 200, 200, 400, 200, 200, 200]

        got = post_all(f"{gw.url}/v2/models/mlp/infer", rows)
        for sent, answer in zip(rows, got, strict=True):
            expected = client.post("/v2/models/mlp_alone/infer", json=sent)
            same_answer(answer, expected, route="mlp")
            assert answer.json()["id"] == sent["id"]
        mlp = {"route": "mlp", "variant": "s"}
        assert gw.metric("servegate_coalesce_items_count", **mlp) < len(rows)
