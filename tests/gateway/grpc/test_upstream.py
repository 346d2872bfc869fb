"""Which upstream a gRPC call takes: TorchServe's ``Predictions`` goes to TorchServe's own gRPC
port when the backend sets ``grpc_address`` (and to its HTTP API without one), OIP ``ModelInfer``
always to HTTP; TorchServe's gRPC answers and refusals come back with the codes a client gets
through the HTTP upstream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway.backends.grpc_upstream import answer
from gateway.grpc.stubs import grpc_predict_v2_pb2 as oip_pb
from tests.conftest import free_ports
from tests.gateway.grpc.support import (
    channel,
    code_of,
    mlp_tensor,
    oip_stub,
    predictions,
    torchserve_stub,
)
from tests.gateway.support import MLP_ROW, run_gateway, ts_backend, write_config
from tests.support.tsclient import TorchServeClient

Code = grpc.StatusCode
ONLY = {"variants": [{"name": "only", "backend": "ts", "model": "mlp_onnx", "weight": 100}]}


def _config(tmp_path: Path, backend: dict[str, Any]) -> Path:
    return write_config(tmp_path / "gateway.yaml", {"ts": backend}, {"mlp": ONLY})


@pytest.mark.integration
def test_predictions_take_torchserve_grpc_port(
    tmp_path: Path, torchserve: TorchServeClient
) -> None:
    """With TorchServe's HTTP address dead and its gRPC address live, gRPC Predictions are
    answered, while REST and OIP ModelInfer (HTTP upstream) are UNAVAILABLE / 503."""
    (dead,) = free_ports(1)
    backend = ts_backend(torchserve, inference_url=f"http://127.0.0.1:{dead}")
    with run_gateway(_config(tmp_path, backend)) as gw, channel(gw.grpc_address) as ch:
        reply = torchserve_stub(ch).Predictions(predictions("mlp"))
        assert len(json.loads(reply.prediction)["outputs"][0]) == 4
        bad = predictions("mlp", body=json.dumps({"inputs": [[1.0, 2.0]]}).encode())
        assert code_of(lambda: torchserve_stub(ch).Predictions(bad)) == Code.INVALID_ARGUMENT
        request = oip_pb.ModelInferRequest(model_name="mlp", inputs=[mlp_tensor([MLP_ROW])])
        assert code_of(lambda: oip_stub(ch).ModelInfer(request)) == Code.UNAVAILABLE
        assert gw.client().post("/predictions/mlp", json={"inputs": [MLP_ROW]}).status_code == 503
        ok = {"route": "mlp", "variant": "only", "protocol": "grpc", "code": "200"}
        assert gw.metric("servegate_requests_total", **ok) == 1
        assert gw.metric("servegate_requests_total", **(ok | {"code": "400"})) == 1


@pytest.mark.integration
def test_without_grpc_address_predictions_take_http(
    tmp_path: Path, torchserve: TorchServeClient
) -> None:
    """No ``grpc_address``: the same call goes to TorchServe's HTTP API and gets the same
    answer; with a dead HTTP address it is UNAVAILABLE."""
    with_grpc = ts_backend(torchserve)
    without = ts_backend(torchserve, grpc_address=None)
    answers = []
    for i, backend in enumerate((with_grpc, without)):
        (tmp_path / str(i)).mkdir()
        with run_gateway(_config(tmp_path / str(i), backend)) as gw, channel(gw.grpc_address) as ch:
            answers.append(
                json.loads(torchserve_stub(ch).Predictions(predictions("mlp")).prediction)
            )
    assert answers[0] == answers[1]
    (dead,) = free_ports(1)
    dead_http = ts_backend(torchserve, grpc_address=None, inference_url=f"http://127.0.0.1:{dead}")
    (tmp_path / "dead").mkdir()
    with run_gateway(_config(tmp_path / "dead", dead_http)) as gw, channel(gw.grpc_address) as ch:
        assert code_of(lambda: torchserve_stub(ch).Predictions(predictions("mlp"))) == (
            Code.UNAVAILABLE
        )


@pytest.mark.integration
def test_dead_grpc_upstream_is_unavailable_and_counted(
    tmp_path: Path, torchserve: TorchServeClient
) -> None:
    (dead,) = free_ports(1)
    backend = ts_backend(torchserve, grpc_address=f"127.0.0.1:{dead}")
    with run_gateway(_config(tmp_path, backend)) as gw, channel(gw.grpc_address) as ch:
        with pytest.raises(grpc.RpcError) as err:
            torchserve_stub(ch).Predictions(predictions("mlp"))
        assert err.value.code() == Code.UNAVAILABLE
        assert str(dead) not in (err.value.details() or "")
        kind = {"route": "mlp", "variant": "only", "kind": "unavailable", "protocol": "grpc"}
        assert gw.metric("servegate_upstream_errors_total", **kind) == 1
        # REST still reaches TorchServe's HTTP API.
        assert gw.client().post("/predictions/mlp", json={"inputs": [MLP_ROW]}).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"code":400,"type":"BadRequest","message":"each input row must have shape [16]"}', 400),
        (b'{"code": 507, "type": "OutOfMemory", "message": "too big"}', 507),
        (b'{"outputs":[[0.1,0.2]]}', 200),
        # Not TorchServe's error shape: a model's own answer that happens to have a "code".
        (b'{"code":400,"type":"x","message":"y","extra":1}', 200),
        (b'{"code":"400","type":"x","message":"y"}', 200),
        (b'{"code":200,"type":"x","message":"y"}', 200),
        (b'{"code":400, broken', 200),
        (b"\x89PNG raw bytes", 200),
    ],
)
def test_torchserve_error_body_becomes_its_status(body: bytes, status: int) -> None:
    reply = answer(body)
    assert (reply.status, reply.body) == (status, body)


@pytest.mark.integration
def test_rejected_key_over_grpc_is_reread_and_retried(
    tmp_path: Path, torchserve: TorchServeClient
) -> None:
    """TorchServe's PERMISSION_DENIED takes the same renewal path as its HTTP 400: with no new
    key the client gets UNAVAILABLE (no TorchServe text), once the key file has one the call is
    retried with it and answered."""
    key_file = tmp_path / "key_file.json"
    real = json.loads(torchserve.settings.key_file.read_text())
    key_file.write_text(json.dumps({**real, "inference": {"key": "wrong"}}))
    backend = ts_backend(torchserve, key_file=str(key_file))
    with run_gateway(_config(tmp_path, backend)) as gw, channel(gw.grpc_address) as ch:
        with pytest.raises(grpc.RpcError) as err:
            torchserve_stub(ch).Predictions(predictions("mlp"))
        assert err.value.code() == Code.UNAVAILABLE
        assert "Token" not in (err.value.details() or "")
        assert gw.metric("servegate_backend_auth_rejections_total", backend="ts") == 1
        key_file.write_text(json.dumps(real))
        assert torchserve_stub(ch).Predictions(predictions("mlp")).prediction
        assert gw.metric("servegate_backend_key_renewals_total", backend="ts", result="reread") == 1
