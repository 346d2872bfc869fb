"""Open Inference Protocol v2 round trips (metadata, ready, infer) through the gateway."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.gateway.support import MLP_ROW, run_gateway
from tests.support.tsclient import TorchServeClient

pytestmark = pytest.mark.integration


def test_server_endpoints(fake_config_path: Path) -> None:
    with run_gateway(fake_config_path) as gw, gw.client() as c:
        assert c.get("/v2").json() == {
            "name": "servegate",
            "version": "0.1.0",
            "extensions": ["binary_tensor_data"],
        }
        assert c.get("/v2/health/live").json() == {"live": True}
        ready = c.get("/v2/health/ready")
        assert (ready.status_code, ready.json()) == (200, {"ready": True})


def test_mlp_round_trip(config_path: Path, torchserve: TorchServeClient) -> None:
    with run_gateway(config_path) as gw, gw.client() as c:
        meta = c.get("/v2/models/mlp").json()
        assert meta == c.get("/v2/models/mlp/versions/1.0").json()
        ready = c.get("/v2/models/mlp/versions/1.0/ready")
        tensor = {
            "name": "features",
            "shape": [2, 16],
            "datatype": "FP32",
            "data": [MLP_ROW, MLP_ROW[::-1]],
        }
        body = {"id": "req-7", "inputs": [tensor]}
        infer = c.post(
            "/v2/models/mlp/versions/1.0/infer",
            json=body,
            headers={"X-Servegate-Variant": "stable"},
        )
        assert c.get("/v2/models/mlp/ready").json() == {"name": "mlp", "ready": True}
    assert meta["name"] == "mlp" and meta["versions"] == ["1.0"]
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 16]}]
    assert meta["outputs"] == [{"name": "scores", "datatype": "FP32", "shape": [-1, 4]}]
    assert ready.json() == {"name": "mlp", "ready": True}
    answer = infer.json()
    assert infer.status_code == 200
    assert (answer["model_name"], answer["model_version"], answer["id"]) == ("mlp", "1.0", "req-7")
    [out] = answer["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("scores", "FP32", [2, 4])
    direct = torchserve.predict("mlp_torchscript/1.0", json={"inputs": [MLP_ROW, MLP_ROW[::-1]]})
    flat = [x for row in direct.json()["outputs"] for x in row]
    assert out["data"] == pytest.approx(flat)


def test_minilm_round_trip_with_bytes(config_path: Path, torchserve: TorchServeClient) -> None:
    texts = ["The gateway splits traffic.", "Canaries get a small share."]
    with run_gateway(config_path) as gw, gw.client() as c:
        meta = c.get("/v2/models/minilm").json()
        ready = c.get("/v2/models/minilm/ready").json()
        infer = c.post(
            "/v2/models/minilm/infer",
            json={"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]},
        )
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    [output_meta] = meta["outputs"]
    assert output_meta["datatype"] == "FP32" and output_meta["shape"][-1] == 384
    assert ready == {"name": "minilm", "ready": True}
    assert infer.status_code == 200, infer.text
    body = infer.json()
    assert (body["model_name"], body["model_version"]) == ("minilm", "1.0")
    [out] = body["outputs"]
    assert out["name"] == output_meta["name"] and out["shape"] == [2, 384]
    direct = torchserve.predict("minilm_torchscript/1.0", json={"inputs": texts}).json()
    flat = [x for row in direct["embeddings"] for x in row]
    assert out["data"] == pytest.approx(flat, abs=1e-6)
    assert math.isclose(sum(x * x for x in out["data"][:384]), 1.0, rel_tol=1e-4)
