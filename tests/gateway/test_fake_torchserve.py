"""The fake TorchServe answers the way the gateway's TorchServe backend reads TorchServe: its
404s are recognised as "not served", its /metrics parse into the scraped series, and each
scripted behaviour does what the tests that use it rely on."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest

from gateway.backends.archive import read_signature
from gateway.backends.torchserve import not_served
from gateway.scrape import parse
from tests.gateway.support import MLP_ROW
from tests.support.fake_torchserve import FakeTorchServe

ROW = {"inputs": [MLP_ROW]}


def post(fake: FakeTorchServe, path: str, timeout: float = 10.0) -> httpx.Response:
    return httpx.post(f"{fake.url}/predictions/{path}", json=ROW, timeout=timeout)


def test_unknown_models_and_versions_get_torchserves_own_404(fake_ts: FakeTorchServe) -> None:
    for path in ("nope/1.0", "mlp_onnx/9.9"):
        resp = post(fake_ts, path)
        assert not_served(resp.status_code, resp.content), resp.text
    options = httpx.request("OPTIONS", f"{fake_ts.url}/predictions/mlp_onnx/1.0")
    assert options.status_code == 200
    assert httpx.get(f"{fake_ts.url}/ping").json() == {"status": "Healthy"}


def test_variants_of_a_kind_agree_and_metrics_parse(fake_ts: FakeTorchServe) -> None:
    a, b = post(fake_ts, "mlp_torchscript/1.0"), post(fake_ts, "mlp_onnx")
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json() and len(a.json()["outputs"][0]) == 4
    series = parse(httpx.get(f"{fake_ts.url}/metrics").text)
    assert series["ts_inference_requests"][("mlp_torchscript", "1.0")] == 1
    assert series["ts_inference_requests"][("mlp_onnx", "default")] == 1
    assert series["ts_inference_latency_microseconds"][("mlp_onnx", "default")] > 0
    assert series["ts_queue_latency_microseconds"][("mlp_onnx", "default")] > 0


def test_the_store_holds_the_signatures(fake_store: Path) -> None:
    mlp = read_signature(fake_store / "mlp_onnx.mar")
    assert [(t.name, t.shape) for t in mlp.inputs] == [("features", (-1, 16))]
    minilm = read_signature(fake_store / "minilm_torchscript.mar")
    assert [(t.name, t.datatype) for t in minilm.inputs] == [("text", "BYTES")]
    assert minilm.outputs[0].shape == (-1, 384)


def test_scripted_status_and_every_nth_failure(fake_ts: FakeTorchServe) -> None:
    fake_ts.behave("mlp_onnx", status=507)
    resp = post(fake_ts, "mlp_onnx/1.0")
    assert (resp.status_code, resp.json()["message"]) == (507, "Out of resources")
    fake_ts.behave("mlp_onnx", fail_every=3)
    codes = [post(fake_ts, "mlp_onnx/1.0").status_code for _ in range(5)]
    # The 507 above was the first request: the 3rd and 6th fail.
    assert codes == [200, 500, 200, 200, 500]


def test_perturbed_outputs_have_the_cosine_asked_for(fake_ts: FakeTorchServe) -> None:
    true = post(fake_ts, "mlp_stable/1.0").json()["outputs"][0]
    bent = post(fake_ts, "mlp_perturbed/1.0").json()["outputs"][0]
    dot = sum(x * y for x, y in zip(true, bent, strict=True))
    norms = math.sqrt(sum(x * x for x in true)) * math.sqrt(sum(y * y for y in bent))
    assert dot / norms == pytest.approx(0.9, abs=1e-9)


def test_hang_and_reset(fake_ts: FakeTorchServe) -> None:
    fake_ts.behave("mlp_onnx", hang=True)
    with pytest.raises(httpx.ReadTimeout):
        post(fake_ts, "mlp_onnx/1.0", timeout=0.3)
    fake_ts.behave("mlp_onnx", reset=True)
    with pytest.raises(httpx.RemoteProtocolError):
        post(fake_ts, "mlp_onnx/1.0")
