"""Every refusal answers with its gRPC status code: unknown model NOT_FOUND, bad input
INVALID_ARGUMENT, message over the limit RESOURCE_EXHAUSTED, backend down UNAVAILABLE, too slow
DEADLINE_EXCEEDED; the client's deadline and cancellation reach the upstream call; no
TorchServe management RPC is reachable."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway.grpc.stubs import grpc_predict_v2_pb2 as oip_pb
from gateway.grpc.stubs import management_pb2 as mgmt_pb
from gateway.grpc.stubs import management_pb2_grpc as mgmt_grpc
from tests.conftest import free_ports
from tests.gateway.grpc.support import (
    channel,
    code_of,
    mlp_tensor,
    oip_stub,
    predictions,
    torchserve_stub,
)
from tests.gateway.support import MLP_ROW, run_gateway, split_route, wait_for, write_config
from tests.support.fake_torchserve import FakeTorchServe

pytestmark = pytest.mark.integration
Code = grpc.StatusCode


def test_unknown_model_version_or_variant_is_not_found(fake_config_path: Path) -> None:
    with run_gateway(fake_config_path) as gw, channel(gw.grpc_address) as ch:
        ts, oip = torchserve_stub(ch), oip_stub(ch)
        infer = oip_pb.ModelInferRequest(model_name="nope", inputs=[mlp_tensor([MLP_ROW])])
        ghost = (("x-servegate-variant", "ghost"),)
        assert code_of(lambda: ts.Predictions(predictions("nope"))) == Code.NOT_FOUND
        assert code_of(lambda: ts.Predictions(predictions("mlp", version="9"))) == Code.NOT_FOUND
        assert code_of(lambda: ts.Predictions(predictions("mlp"), metadata=ghost)) == Code.NOT_FOUND
        assert code_of(lambda: oip.ModelInfer(infer)) == Code.NOT_FOUND
        for name, version in (("nope", ""), ("mlp", "9")):
            meta = oip_pb.ModelMetadataRequest(name=name, version=version)
            ready = oip_pb.ModelReadyRequest(name=name, version=version)
            assert code_of(lambda m=meta: oip.ModelMetadata(m)) == Code.NOT_FOUND
            assert code_of(lambda r=ready: oip.ModelReady(r)) == Code.NOT_FOUND
        assert gw.metric("servegate_requests_total", route="_unknown", protocol="grpc") == 2


def test_bad_input_is_invalid_argument(config_path: Path) -> None:
    fp16 = oip_pb.ModelInferRequest.InferInputTensor(name="features", datatype="FP16", shape=[1])
    wrong_shape = mlp_tensor([MLP_ROW])
    wrong_shape.shape[:] = [1, 15]
    two_raw = oip_pb.ModelInferRequest(model_name="mlp", inputs=[mlp_tensor([MLP_ROW])])
    two_raw.raw_input_contents.extend([b"\0" * 64, b"\0" * 64])
    not_text = oip_pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[1])
    not_text.contents.bytes_contents.append(b"\xff\xfe")
    cases = [
        oip_pb.ModelInferRequest(model_name="mlp"),
        oip_pb.ModelInferRequest(model_name="mlp", inputs=[wrong_shape]),
        oip_pb.ModelInferRequest(model_name="mlp", inputs=[fp16]),
        two_raw,
        oip_pb.ModelInferRequest(model_name="minilm", inputs=[not_text]),
        oip_pb.ModelInferRequest(
            model_name="mlp",
            inputs=[  # the worker's own 400
                oip_pb.ModelInferRequest.InferInputTensor(name="t", datatype="BYTES", shape=[0])
            ],
        ),
    ]
    with run_gateway(config_path) as gw, channel(gw.grpc_address) as ch:
        ts, oip = torchserve_stub(ch), oip_stub(ch)
        bad = json.dumps({"inputs": [[1.0, 2.0]]}).encode()
        assert code_of(lambda: ts.Predictions(predictions("mlp", body=bad))) == (
            Code.INVALID_ARGUMENT
        )
        empty = predictions("mlp")
        empty.ClearField("input")
        assert code_of(lambda: ts.Predictions(empty)) == Code.INVALID_ARGUMENT
        for request in cases:
            assert code_of(lambda r=request: oip.ModelInfer(r)) == Code.INVALID_ARGUMENT, request


def test_message_over_the_limit_is_resource_exhausted(fake_config_path: Path) -> None:
    big = json.dumps({"inputs": [MLP_ROW] * 200}).encode()  # ~20 kB
    with run_gateway(fake_config_path, max_body_bytes=4096) as gw, channel(gw.grpc_address) as ch:
        ts, oip = torchserve_stub(ch), oip_stub(ch)
        assert code_of(lambda: ts.Predictions(predictions("mlp", body=big))) == (
            Code.RESOURCE_EXHAUSTED
        )
        request = oip_pb.ModelInferRequest(model_name="mlp", inputs=[mlp_tensor([MLP_ROW] * 100)])
        assert code_of(lambda: oip.ModelInfer(request)) == Code.RESOURCE_EXHAUSTED
        assert ts.Predictions(predictions("mlp")).prediction  # small ones still pass


def test_backend_down_is_unavailable(tmp_path: Path, fake_backends: dict[str, Any]) -> None:
    (dead_port,) = free_ports(1)
    fake_backends = {**fake_backends, "dead": {"inference_url": f"http://127.0.0.1:{dead_port}"}}
    route = {"variants": [{"name": "only", "backend": "dead", "model": "mlp_onnx", "weight": 100}]}
    config = write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": route})
    with run_gateway(config) as gw, channel(gw.grpc_address) as ch:
        ts, oip = torchserve_stub(ch), oip_stub(ch)
        with pytest.raises(grpc.RpcError) as err:
            ts.Predictions(predictions("mlp"))
        assert err.value.code() == Code.UNAVAILABLE
        assert str(dead_port) not in (err.value.details() or "")
        assert dict(err.value.initial_metadata())["x-servegate-variant"] == "only"
        request = oip_pb.ModelInferRequest(model_name="mlp", inputs=[mlp_tensor([MLP_ROW])])
        assert code_of(lambda: oip.ModelInfer(request)) == Code.UNAVAILABLE
        assert not oip.ServerReady(oip_pb.ServerReadyRequest()).ready
        kind = {"route": "mlp", "variant": "only", "kind": "unavailable", "protocol": "grpc"}
        # Each request was retried once (its connection never opened): two attempts each.
        assert gw.metric("servegate_upstream_errors_total", **kind) == 4


class BlackHole:
    """A backend that accepts connections and never answers. It records when each prediction
    call's connection is closed; the gateway's readiness probes (OPTIONS, closed by their own
    5 s timeout) are not counted."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.closed = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        with conn:
            first = conn.recv(65536)
            counted = not first.startswith(b"OPTIONS ")
            if counted:
                self.accepted += 1
            while first and conn.recv(65536):
                pass
        if counted:
            self.closed += 1


@contextmanager
def black_hole_gateway(
    tmp_path: Path, timeout_s: float, upstream: str = "http"
) -> Iterator[tuple[Any, BlackHole]]:
    """A gateway whose one backend never answers, over HTTP or over TorchServe's gRPC."""
    hole = BlackHole()
    backend = {"inference_url": f"http://127.0.0.1:{hole.port}"}
    if upstream == "grpc":
        backend["grpc_address"] = f"127.0.0.1:{hole.port}"
    backends = {"hole": backend}
    route = {
        "variants": [{"name": "only", "backend": "hole", "model": "m", "weight": 100}],
        "timeout_s": timeout_s,
    }
    config = write_config(tmp_path / "gateway.yaml", backends, {"mlp": route})
    try:
        with run_gateway(config) as gw:
            yield gw, hole
    finally:
        hole.sock.close()


def test_backend_slower_than_the_route_timeout_is_deadline_exceeded(
    tmp_path: Path, fake_ts: FakeTorchServe, fake_backends: dict[str, Any]
) -> None:
    fake_ts.behave("mlp_torchscript", delay_s=0.05)  # well over the route's 0.5 ms
    config = write_config(
        tmp_path / "gateway.yaml", fake_backends, {"mlp": split_route(100, 0, timeout_s=0.0005)}
    )
    with run_gateway(config) as gw, channel(gw.grpc_address) as ch:
        ts, oip = torchserve_stub(ch), oip_stub(ch)
        assert code_of(lambda: ts.Predictions(predictions("mlp"))) == Code.DEADLINE_EXCEEDED
        request = oip_pb.ModelInferRequest(model_name="mlp", inputs=[mlp_tensor([MLP_ROW])])
        assert code_of(lambda: oip.ModelInfer(request)) == Code.DEADLINE_EXCEEDED
        kind = {"route": "mlp", "variant": "stable", "kind": "timeout", "protocol": "grpc"}
        assert gw.metric("servegate_upstream_errors_total", **kind) == 2


# Over HTTP each upstream call has its own connection, so a dropped call shows as a closed
# connection; over gRPC the connection to TorchServe is shared and stays, and the call's end
# shows in the gateway's own accounting (in flight back to 0, 504 or 499 counted).
@pytest.mark.parametrize("upstream", ["http", "grpc"])
def test_client_deadline_bounds_the_upstream_call(tmp_path: Path, upstream: str) -> None:
    # The route allows 600 s; the client's 0.5 s deadline is what ends the upstream call.
    with (
        black_hole_gateway(tmp_path, timeout_s=600, upstream=upstream) as (gw, hole),
        channel(gw.grpc_address) as ch,
    ):
        ts = torchserve_stub(ch)
        assert code_of(lambda: ts.Predictions(predictions("mlp"), timeout=0.5)) == (
            Code.DEADLINE_EXCEEDED
        )
        if upstream == "http":
            wait_for(lambda: hole.closed == hole.accepted >= 1, "the upstream call to be dropped")
        in_flight = {"route": "mlp", "variant": "only"}
        wait_for(lambda: gw.metric("servegate_in_flight_requests", **in_flight) == 0, "call ended")


@pytest.mark.parametrize("upstream", ["http", "grpc"])
def test_client_cancellation_reaches_the_upstream_call(tmp_path: Path, upstream: str) -> None:
    with (
        black_hole_gateway(tmp_path, timeout_s=600, upstream=upstream) as (gw, hole),
        channel(gw.grpc_address) as ch,
    ):
        future = torchserve_stub(ch).Predictions.future(predictions("mlp"))
        in_flight = {"route": "mlp", "variant": "only"}
        wait_for(
            lambda: gw.metric("servegate_in_flight_requests", **in_flight) == 1,
            "the upstream call to start",
        )
        assert future.cancel()
        if upstream == "http":
            wait_for(lambda: hole.closed == hole.accepted >= 1, "the upstream call to be dropped")
        labels = {"route": "mlp", "variant": "only", "protocol": "grpc", "code": "499"}
        wait_for(lambda: gw.metric("servegate_requests_total", **labels) == 1, "499 counted")
        assert gw.metric("servegate_in_flight_requests", route="mlp", variant="only") == 0


def test_no_management_rpc_is_reachable(fake_config_path: Path) -> None:
    with run_gateway(fake_config_path) as gw, channel(gw.grpc_address) as ch:
        mgmt = mgmt_grpc.ManagementAPIsServiceStub(ch)
        calls = [
            lambda: mgmt.ListModels(mgmt_pb.ListModelsRequest()),
            lambda: mgmt.DescribeModel(mgmt_pb.DescribeModelRequest(model_name="mlp_onnx")),
            lambda: mgmt.RegisterModel(mgmt_pb.RegisterModelRequest(url="mlp_onnx.mar")),
            lambda: mgmt.UnregisterModel(mgmt_pb.UnregisterModelRequest(model_name="mlp_onnx")),
            lambda: mgmt.ScaleWorker(mgmt_pb.ScaleWorkerRequest(model_name="mlp_onnx")),
            lambda: mgmt.SetDefault(mgmt_pb.SetDefaultRequest(model_name="mlp_onnx")),
        ]
        for call in calls:
            assert code_of(call) == Code.UNIMPLEMENTED
