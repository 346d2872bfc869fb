"""TorchServe's gRPC ``Predictions`` and OIP v2 ``ModelInfer`` through a real gateway in front of
a real TorchServe answer exactly what TorchServe answers directly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import empty_pb2

from gateway.grpc.stubs import grpc_predict_v2_pb2 as oip_pb
from gateway.grpc.stubs import inference_pb2 as ts_pb
from gateway.tensor_bytes import join_bytes
from tests.gateway.grpc.support import (
    channel,
    direct_address,
    direct_auth,
    mlp_tensor,
    oip_stub,
    predictions,
    torchserve_stub,
    variant_of,
)
from tests.gateway.support import MLP_ROW, run_gateway
from tests.support.tsclient import TorchServeClient

pytestmark = pytest.mark.integration
PIN = "x-servegate-variant"


@pytest.mark.parametrize(
    "case",
    [
        ("mlp", "stable", "mlp_torchscript", {"data": json.dumps({"inputs": [MLP_ROW]})}),
        ("mlp", "canary", "mlp_onnx", {"data": json.dumps({"inputs": [MLP_ROW, MLP_ROW[::-1]]})}),
        ("minilm", "stable", "minilm_torchscript", {"data": '{"inputs": ["a cat", "a dog"]}'}),
        ("minilm", "canary", "minilm_onnx", {"body": "plain text, not JSON"}),
        ("minilm", "stable", "minilm_torchscript", {"data": '{"inputs": ["x"]}', "extra": "y"}),
    ],
)
def test_predictions_equal_torchserve_grpc(
    config_path: Path, torchserve: TorchServeClient, case: tuple[str, str, str, dict[str, str]]
) -> None:
    route, variant, ts_model, inputs = case
    body = {k: v.encode() for k, v in inputs.items()}
    with channel(direct_address(torchserve)) as ch:
        request = ts_pb.PredictionsRequest(model_name=ts_model, model_version="1.0", input=body)
        direct = torchserve_stub(ch).Predictions(request, metadata=direct_auth(torchserve))
    with run_gateway(config_path) as gw, channel(gw.grpc_address) as ch:
        request = ts_pb.PredictionsRequest(model_name=route, input=body)
        via, call = torchserve_stub(ch).Predictions.with_call(request, metadata=((PIN, variant),))
    assert json.loads(via.prediction) == json.loads(direct.prediction)
    assert variant_of(call) == variant
    assert len(dict(call.initial_metadata())["x-request-id"]) == 32


def test_ping_and_version_pin(config_path: Path, torchserve: TorchServeClient) -> None:
    with channel(direct_address(torchserve)) as ch:
        direct = torchserve_stub(ch).Ping(empty_pb2.Empty(), metadata=direct_auth(torchserve))
    with run_gateway(config_path) as gw, channel(gw.grpc_address) as ch:
        stub = torchserve_stub(ch)
        assert json.loads(stub.Ping(empty_pb2.Empty()).health) == json.loads(direct.health)
        _, call = stub.Predictions.with_call(
            predictions("mlp", version="1.0"), metadata=(("x-request-id", "mine-1"),)
        )
    assert dict(call.initial_metadata())["x-request-id"] == "mine-1"
    assert variant_of(call) in {"stable", "canary"}


def oip_direct(ts: TorchServeClient, model: str, tensor: dict[str, Any]) -> dict[str, Any]:
    """TorchServe's answer to the same OIP request as JSON (its OIP gRPC port cannot be used:
    TorchServe names that service ``org.pytorch.serve.grpc.openinference``, not ``inference``)."""
    resp = ts.predict(f"{model}/1.0", json={"id": "r1", "inputs": [tensor]})
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


def fp32(values: Any) -> np.ndarray[Any, Any]:
    return np.asarray(values, dtype=np.float32)


@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize(
    ("variant", "ts_model"), [("stable", "mlp_torchscript"), ("canary", "mlp_onnx")]
)
def test_model_infer_mlp_equals_direct(
    config_path: Path, torchserve: TorchServeClient, raw: bool, variant: str, ts_model: str
) -> None:
    rows = [MLP_ROW, MLP_ROW[::-1]]
    direct = oip_direct(
        torchserve,
        ts_model,
        {"name": "features", "datatype": "FP32", "shape": [2, 16], "data": rows},
    )
    request = oip_pb.ModelInferRequest(model_name="mlp", id="r1", inputs=[mlp_tensor(rows)])
    if raw:
        request.inputs[0].ClearField("contents")
        request.raw_input_contents.append(fp32(rows).tobytes())
    with run_gateway(config_path) as gw, channel(gw.grpc_address) as ch:
        answer, call = oip_stub(ch).ModelInfer.with_call(request, metadata=((PIN, variant),))
    assert variant_of(call) == variant
    assert (answer.model_name, answer.model_version, answer.id) == ("mlp", "1.0", "r1")
    (out,) = answer.outputs
    (want,) = direct["outputs"]
    assert (out.name, out.datatype, list(out.shape)) == (
        want["name"],
        want["datatype"],
        want["shape"],
    )
    got = np.frombuffer(answer.raw_output_contents[0], "<f4") if raw else out.contents.fp32_contents
    assert len(answer.raw_output_contents) == (1 if raw else 0)
    np.testing.assert_array_equal(fp32(got), fp32(want["data"]))


@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize(
    ("variant", "ts_model"), [("stable", "minilm_torchscript"), ("canary", "minilm_onnx")]
)
def test_model_infer_minilm_text_as_bytes_equals_direct(
    config_path: Path, torchserve: TorchServeClient, raw: bool, variant: str, ts_model: str
) -> None:
    texts = ["a cat sits on the mat", "Grüße, ünïcode"]
    direct = oip_direct(
        torchserve, ts_model, {"name": "text", "datatype": "BYTES", "shape": [2], "data": texts}
    )
    tensor = oip_pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[2])
    request = oip_pb.ModelInferRequest(model_name="minilm", id="r1", inputs=[tensor])
    encoded = [t.encode() for t in texts]
    if raw:
        request.raw_input_contents.append(join_bytes(encoded))
    else:
        request.inputs[0].contents.bytes_contents.extend(encoded)
    with run_gateway(config_path) as gw, channel(gw.grpc_address) as ch:
        answer, call = oip_stub(ch).ModelInfer.with_call(request, metadata=((PIN, variant),))
    assert variant_of(call) == variant
    (out,) = answer.outputs
    (want,) = direct["outputs"]
    assert (
        (out.name, list(out.shape))
        == (want["name"], want["shape"])
        == ("sentence_embedding", [2, 384])
    )
    got = np.frombuffer(answer.raw_output_contents[0], "<f4") if raw else out.contents.fp32_contents
    np.testing.assert_array_equal(fp32(got), fp32(want["data"]))


def test_server_and_model_metadata_match_rest(config_path: Path) -> None:
    with run_gateway(config_path) as gw, channel(gw.grpc_address) as ch, gw.client() as c:
        stub = oip_stub(ch)
        assert stub.ServerLive(oip_pb.ServerLiveRequest()).live
        assert stub.ServerReady(oip_pb.ServerReadyRequest()).ready
        server = stub.ServerMetadata(oip_pb.ServerMetadataRequest())
        assert c.get("/v2").json() == {
            "name": server.name,
            "version": server.version,
            "extensions": list(server.extensions),
        }
        for model in ("mlp", "minilm"):
            assert stub.ModelReady(oip_pb.ModelReadyRequest(name=model, version="1.0")).ready
            meta = stub.ModelMetadata(oip_pb.ModelMetadataRequest(name=model))
            rest = c.get(f"/v2/models/{model}").json()
            assert meta.name == rest["name"] and list(meta.versions) == rest["versions"]
            assert meta.platform == rest["platform"]
            for ours, theirs in ((meta.inputs, rest["inputs"]), (meta.outputs, rest["outputs"])):
                assert [
                    {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in ours
                ] == theirs


def test_grpc_requests_are_counted_with_their_protocol(config_path: Path) -> None:
    with run_gateway(config_path) as gw, channel(gw.grpc_address) as ch:
        stub = torchserve_stub(ch)
        for _ in range(3):
            stub.Predictions(predictions("mlp"), metadata=((PIN, "canary"),))
        with gw.client() as c:
            assert (
                c.post(
                    "/predictions/mlp", json={"inputs": [MLP_ROW]}, headers={PIN: "canary"}
                ).status_code
                == 200
            )
        with pytest.raises(grpc.RpcError):
            stub.Predictions(predictions("nope"))
        m = gw.metric
        labels = {"route": "mlp", "variant": "canary", "code": "200"}
        assert m("servegate_requests_total", **labels, protocol="grpc") == 3
        assert m("servegate_requests_total", **labels, protocol="rest") == 1
        assert (
            m(
                "servegate_request_duration_seconds_count",
                route="mlp",
                variant="canary",
                protocol="grpc",
            )
            == 3
        )
        assert m("servegate_requests_total", route="_unknown", protocol="grpc", code="404") == 1
