"""Binary tensors end to end: Triton's own Python client (``tritonclient``) against the gateway,
over REST (the binary data extension) and gRPC (``raw_input_contents``/``raw_output_contents``),
with a real TorchServe behind it; answers equal the JSON path's. The gRPC client runs as a process
of its own (``tests/support/triton_grpc_client.py`` says why)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http

from tests.gateway.support import MLP_ROW, RunningGateway, run_gateway

pytestmark = pytest.mark.integration

TEXTS = ["Binary tensors skip the JSON text.", "A second, longer sentence for the batch."]


@pytest.fixture
def gateway(config_path: Path) -> Iterator[RunningGateway]:
    with run_gateway(config_path) as gw:
        yield gw


def json_infer(gw: RunningGateway, model: str, tensor: dict[str, object]) -> np.ndarray:
    with gw.client() as c:
        resp = c.post(f"/v2/models/{model}/infer", json={"inputs": [tensor]})
    assert resp.status_code == 200, resp.text
    [out] = resp.json()["outputs"]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


def test_http_client_binary_in_and_out(gateway: RunningGateway) -> None:
    client = triton_http.InferenceServerClient(gateway.url.removeprefix("http://"))
    assert client.is_server_ready() and client.is_model_ready("mlp")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    rows = np.asarray([MLP_ROW, MLP_ROW[::-1]], dtype=np.float32)
    features = triton_http.InferInput("features", list(rows.shape), "FP32")
    features.set_data_from_numpy(rows, binary_data=True)
    result = client.infer("mlp", [features], headers={"X-Servegate-Variant": "stable"})
    scores = result.as_numpy("scores")
    assert scores is not None and scores.dtype == np.float32 and scores.shape == (2, 4)
    expected = json_infer(
        gateway,
        "mlp",
        {"name": "features", "datatype": "FP32", "shape": [2, 16], "data": rows.tolist()},
    )
    np.testing.assert_array_equal(scores, expected)


def test_http_client_bytes_in_embeddings_out(gateway: RunningGateway) -> None:
    client = triton_http.InferenceServerClient(gateway.url.removeprefix("http://"))
    text = triton_http.InferInput("text", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(np.asarray([t.encode() for t in TEXTS], dtype=np.object_))
    [name] = [o["name"] for o in client.get_model_metadata("minilm")["outputs"]]
    result = client.infer("minilm", [text], outputs=[triton_http.InferRequestedOutput(name)])
    embedding = result.as_numpy(name)
    assert embedding is not None and embedding.shape == (2, 384)
    # The answer travelled as bytes: its JSON header has no data, only the size.
    [meta] = result.get_response()["outputs"]
    assert "data" not in meta and meta["parameters"]["binary_data_size"] == 2 * 384 * 4
    expected = json_infer(
        gateway, "minilm", {"name": "text", "datatype": "BYTES", "shape": [2], "data": TEXTS}
    )
    np.testing.assert_allclose(embedding, expected, atol=1e-6)


def test_an_output_asked_as_json_stays_json(gateway: RunningGateway) -> None:
    client = triton_http.InferenceServerClient(gateway.url.removeprefix("http://"))
    features = triton_http.InferInput("features", [1, 16], "FP32")
    features.set_data_from_numpy(np.asarray([MLP_ROW], dtype=np.float32), binary_data=True)
    asked = triton_http.InferRequestedOutput("scores", binary_data=False)
    result = client.infer("mlp", [features], outputs=[asked])
    [meta] = result.get_response()["outputs"]
    assert len(meta["data"]) == 4 and "binary_data_size" not in meta.get("parameters", {})


def triton_grpc(gw: RunningGateway, shape: list[int], rows: list[list[float]]) -> dict[str, Any]:
    argv = [gw.grpc_address, "mlp", "features", json.dumps(shape), json.dumps(rows)]
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.triton_grpc_client", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_grpc_client_raw_in_and_out(gateway: RunningGateway) -> None:
    rows = [MLP_ROW]
    result = triton_grpc(gateway, [1, 16], rows)
    assert result["raw_outputs"] == 1  # raw in, raw out
    expected = json_infer(
        gateway, "mlp", {"name": "features", "datatype": "FP32", "shape": [1, 16], "data": rows}
    )
    np.testing.assert_array_equal(np.asarray(result["output"], dtype=np.float32), expected)


def test_grpc_client_error_is_a_status(gateway: RunningGateway) -> None:
    result = triton_grpc(gateway, [1, 8], [[0.0] * 8])  # the model takes 16 features
    assert result["error"].startswith("StatusCode.INVALID_ARGUMENT"), result


def post_binary(
    gw: RunningGateway, header: dict[str, object], tail: bytes, length: int | None = None
) -> httpx.Response:
    head = json.dumps(header).encode()
    with gw.client() as c:
        return c.post(
            "/v2/models/mlp/infer",
            content=head + tail,
            headers={
                "Inference-Header-Content-Length": str(len(head) if length is None else length)
            },
        )


def features(size: int, shape: list[int]) -> dict[str, object]:
    return {
        "name": "features",
        "datatype": "FP32",
        "shape": shape,
        "parameters": {"binary_data_size": size},
    }


@pytest.mark.parametrize(
    ("header", "tail", "length", "message"),
    [
        ({"inputs": [features(64, [1, 16])]}, b"\0" * 60, None, "needs 64 bytes"),
        ({"inputs": [features(64, [1, 16])]}, b"\0" * 70, None, "6 bytes of binary data"),
        ({"inputs": [features(64, [2, 16])]}, b"\0" * 64, None, "does not match"),
        ({"inputs": [features(64, [1, 16])]}, b"\0" * 64, 10**6, "Inference-Header-Content-Length"),
        ({"inputs": [features(64, [1, 16])]}, b"\0" * 64, 3, "not valid JSON|JSON"),
    ],
)
def test_malformed_binary_bodies_are_400_in_oip_shape(
    gateway: RunningGateway,
    header: dict[str, object],
    tail: bytes,
    length: int | None,
    message: str,
) -> None:
    resp = post_binary(gateway, header, tail, length)
    assert resp.status_code == 400, resp.text
    assert set(resp.json()) == {"error"}
    assert re.search(message, resp.json()["error"]), resp.json()


def test_binary_that_is_too_large_as_json_is_413(config_path: Path) -> None:
    with run_gateway(config_path, max_body_bytes=64 * 1024) as gw:
        rows = (
            np.random.default_rng(0).standard_normal((1000, 16)).astype(np.float32)
        )  # 64,000 bytes
        resp = post_binary(gw, {"inputs": [features(rows.nbytes, [1000, 16])]}, rows.tobytes())
    assert resp.status_code == 413 and "as the JSON the model server takes" in resp.json()["error"]
