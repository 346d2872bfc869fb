"""Every error answers with its status in its protocol's shape, and nothing of TorchServe's
management, token, metrics, workflow or API-description surface is reachable."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_ports
from tests.gateway.support import (
    MLP_ROW,
    RunningGateway,
    run_gateway,
    split_route,
    ts_backend,
    wait_for,
    write_config,
)
from tests.support.fake_torchserve import FakeTorchServe
from tests.support.tsclient import TorchServeClient

pytestmark = pytest.mark.integration
OIP_BODY = {"inputs": [{"name": "features", "shape": [1, 16], "datatype": "FP32", "data": MLP_ROW}]}


def ts_shape(resp: httpx.Response, status: int) -> dict[str, Any]:
    body: dict[str, Any] = resp.json()
    assert resp.status_code == status, resp.text
    assert set(body) == {"code", "type", "message"} and body["code"] == status
    return body


def oip_shape(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    return str(body["error"])


def test_unknown_model_and_version(fake_config_path: Path) -> None:
    with run_gateway(fake_config_path) as gw, gw.client() as c:
        ts_shape(c.post("/predictions/nope", json={"inputs": [MLP_ROW]}), 404)
        ts_shape(c.post("/predictions/mlp/9.9", json={"inputs": [MLP_ROW]}), 404)
        ts_shape(
            c.post(
                "/predictions/mlp",
                json={"inputs": [MLP_ROW]},
                headers={"X-Servegate-Variant": "ghost"},
            ),
            404,
        )
        oip_shape(c.post("/v2/models/nope/infer", json=OIP_BODY), 404)
        oip_shape(c.post("/v2/models/mlp/versions/9.9/infer", json=OIP_BODY), 404)
        oip_shape(c.get("/v2/models/nope"), 404)
        oip_shape(c.get("/v2/models/mlp/versions/9.9/ready"), 404)
        assert gw.metric("servegate_requests_total", route="_unknown", code="404") == 2


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[1, 2]",
        b'{"inputs": []}',
        b'{"inputs": [1, 2]}',
        b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}',
        json.dumps(
            {
                "inputs": [
                    {"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}
                ]
            }
        ).encode(),
    ],
)
def test_malformed_oip_body(config_path: Path, body: bytes) -> None:
    with run_gateway(config_path) as gw, gw.client() as c:
        oip_shape(c.post("/v2/models/mlp/infer", content=body), 400)


def test_malformed_predictions_body(config_path: Path) -> None:
    with run_gateway(config_path) as gw, gw.client() as c:
        for body in (b"not json", b'{"inputs": [[1, 2]]}', b'{"inputs": "x"}'):
            ts_shape(
                c.post(
                    "/predictions/mlp", content=body, headers={"Content-Type": "application/json"}
                ),
                400,
            )


def test_body_over_the_limit_is_refused_without_reading_it(fake_config_path: Path) -> None:
    big = {"inputs": [MLP_ROW] * 200}  # ~20 kB
    with run_gateway(fake_config_path, max_body_bytes=4096) as gw, gw.client() as c:
        ts_shape(c.post("/predictions/mlp", json=big), 413)
        oip_shape(
            c.post(
                "/v2/models/mlp/infer",
                json={
                    "inputs": [{**OIP_BODY["inputs"][0], "data": MLP_ROW * 300, "shape": [300, 16]}]
                },
            ),
            413,
        )
        chunks = (b"x" * 1024 for _ in range(64))  # chunked: no Content-Length to check up front
        ts_shape(c.post("/predictions/mlp", content=chunks), 413)
        # Announce 1 GB, send 10 bytes: the answer must come without the rest of the body.
        with socket.create_connection((gw.settings.host, gw.settings.port), timeout=10) as sock:
            head = b"POST /predictions/mlp HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000000000\r\n"
            sock.sendall(head + b"Content-Type: application/json\r\n\r\n0123456789")
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:80]


def test_backend_unreachable_is_503(tmp_path: Path, fake_backends: dict[str, Any]) -> None:
    (dead_port,) = free_ports(1)
    fake_backends = {**fake_backends, "dead": {"inference_url": f"http://127.0.0.1:{dead_port}"}}
    route = {"variants": [{"name": "only", "backend": "dead", "model": "mlp_onnx", "weight": 100}]}
    config = write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": route})
    with run_gateway(config) as gw, gw.client() as c:
        resp = c.post("/predictions/mlp", json={"inputs": [MLP_ROW]})
        ts_shape(resp, 503)
        assert resp.headers["x-servegate-variant"] == "only"
        assert str(dead_port) not in resp.text  # no internals leak
        oip_shape(c.post("/v2/models/mlp/infer", json=OIP_BODY), 503)
        assert c.get("/v2/health/ready").status_code == 503
        kind = {"route": "mlp", "variant": "only", "kind": "unavailable"}
        # Each request was retried once (its connection never opened): two attempts each.
        assert gw.metric("servegate_upstream_errors_total", **kind) == 4


def test_backend_slower_than_the_route_timeout_is_504(
    tmp_path: Path, fake_ts: FakeTorchServe, fake_backends: dict[str, Any]
) -> None:
    fake_ts.behave("mlp_torchscript", delay_s=0.05)  # well over the route's 0.5 ms
    config = write_config(
        tmp_path / "gateway.yaml", fake_backends, {"mlp": split_route(100, 0, timeout_s=0.0005)}
    )
    with run_gateway(config) as gw, gw.client() as c:
        ts_shape(c.post("/predictions/mlp", json={"inputs": [MLP_ROW]}), 504)
        oip_shape(c.post("/v2/models/mlp/infer", json=OIP_BODY), 504)
        kind = {"route": "mlp", "variant": "stable", "kind": "timeout"}
        assert gw.metric("servegate_upstream_errors_total", **kind) == 2


def test_rejected_key_is_503_with_a_metric_and_a_new_key_is_picked_up(
    tmp_path: Path, torchserve: TorchServeClient
) -> None:
    key_file = tmp_path / "key_file.json"
    real = json.loads(torchserve.settings.key_file.read_text())
    key_file.write_text(json.dumps({**real, "inference": {"key": "wrong"}}))
    backends = {"ts": ts_backend(torchserve, key_file=str(key_file))}
    config = write_config(tmp_path / "gateway.yaml", backends, {"mlp": split_route(100, 0)})
    with run_gateway(config) as gw, gw.client() as c:
        resp = c.post("/predictions/mlp", json={"inputs": [MLP_ROW]})
        assert "Token" not in ts_shape(resp, 503)["message"]
        oip_shape(c.post("/v2/models/mlp/infer", json=OIP_BODY), 503)
        assert gw.metric("servegate_backend_auth_rejections_total", backend="ts") == 2
        key_file.write_text(json.dumps(real))  # TorchServe restarted / the key was rotated
        assert c.post("/predictions/mlp", json={"inputs": [MLP_ROW]}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/models"),
        ("GET", "/models/mlp_torchscript"),
        ("PUT", "/models/mlp_onnx"),
        ("DELETE", "/models/mlp_onnx"),
        ("POST", "/models?url=mlp_onnx.mar"),
        ("OPTIONS", "/"),
        ("GET", "/api-description"),
        ("POST", "/token?type=inference"),
        ("GET", "/metrics"),
        ("GET", "/workflows"),
        ("POST", "/wfpredict/mlp"),
        ("POST", "/predictions/mlp_torchscript"),
        ("GET", "/predictions/mlp"),
        ("POST", "/predictions/mlp/1.0/extra"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("POST", "/v2/models/mlp_onnx/infer"),
        ("GET", "/v2/repository"),
        ("POST", "/explanations/mlp"),
        ("GET", "/v2/models/mlp/infer"),
    ],
)
def test_no_torchserve_surface_is_reachable(
    shared_gateway: RunningGateway, method: str, path: str
) -> None:
    with shared_gateway.client() as c:
        resp = c.request(method, path)
    assert resp.status_code in (404, 405), (resp.status_code, resp.text)
    if path.startswith("/v2"):
        oip_shape(resp, resp.status_code)
    else:
        ts_shape(resp, resp.status_code)


def test_dot_segments_do_not_escape_the_prediction_api(fake_config_path: Path) -> None:
    with run_gateway(fake_config_path) as gw:
        for raw in (b"/predictions/../models", b"/predictions/%2e%2e/models", b"/v2/../models"):
            with socket.create_connection((gw.settings.host, gw.settings.port), timeout=10) as s:
                s.sendall(b"GET " + raw + b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
            assert answer.split(b" ")[1] in (b"404", b"405"), answer[:200]
            assert b"mlp_torchscript" not in answer


def test_a_client_that_hangs_up_cancels_its_upstream_call_without_an_error(
    tmp_path: Path,
    fake_ts: FakeTorchServe,
    fake_backends: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As nginx and Envoy: the request is abandoned (499), not served to nobody for seconds,
    and a hang-up is no error of the gateway's (uvicorn logs a cancelled app as one)."""
    fake_ts.behave("mlp_torchscript", delay_s=5.0)
    config = write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": split_route(100, 0)})
    caplog.set_level(logging.INFO)
    with run_gateway(config) as gw:
        began = time.monotonic()
        for path, body in (
            ("/predictions/mlp", {"inputs": [MLP_ROW]}),
            ("/v2/models/mlp/infer", OIP_BODY),
        ):
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(gw.url + path, json=body, timeout=0.3)
        labels = {"route": "mlp", "variant": "stable"}
        wait_for(
            lambda: (
                gw.metric("servegate_requests_total", **labels, protocol="rest", code="499") == 2
            ),
            "both requests counted as abandoned",
        )
        assert time.monotonic() - began < 4.5  # not held until the upstream's answer
        assert gw.metric("servegate_in_flight_requests", **labels) == 0
    assert "Exception in ASGI application" not in caplog.text
    assert "unhandled error" not in caplog.text
