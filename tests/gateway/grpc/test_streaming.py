"""StreamPredictions (one answer per request) and StreamPredictions2 (bidirectional, answers in
order with their sequence ids, failures in-band, the stream kept on one variant)."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from gateway.grpc.stubs import inference_pb2 as ts_pb
from tests.gateway.grpc.support import MLP_BODY, channel, predictions, torchserve_stub, variant_of
from tests.gateway.support import MLP_ROW, run_gateway

pytestmark = pytest.mark.integration


def test_stream_predictions_answers_like_predictions(fake_config_path: Path) -> None:
    pin = (("x-servegate-variant", "canary"),)
    with run_gateway(fake_config_path) as gw, channel(gw.grpc_address) as ch:
        stub = torchserve_stub(ch)
        unary = stub.Predictions(predictions("mlp"), metadata=pin)
        call = stub.StreamPredictions(predictions("mlp"), metadata=pin)
        streamed = list(call)
        assert variant_of(call) == "canary"
        with pytest.raises(grpc.RpcError) as err:
            list(stub.StreamPredictions(predictions("nope")))
    assert [json.loads(m.prediction) for m in streamed] == [json.loads(unary.prediction)]
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_stream_predictions2_in_order_with_in_band_errors(fake_config_path: Path) -> None:
    bad = json.dumps({"inputs": [[1.0, 2.0]]}).encode()  # the worker answers 400
    bodies = [MLP_BODY, bad, json.dumps({"inputs": [MLP_ROW[::-1]]}).encode(), MLP_BODY]
    requests = [
        ts_pb.PredictionsRequest(model_name="mlp", input={"data": b}, sequence_id=f"s{i}")
        for i, b in enumerate(bodies)
    ]
    with run_gateway(fake_config_path) as gw, channel(gw.grpc_address) as ch:
        stub = torchserve_stub(ch)
        singles = [
            stub.Predictions(r, metadata=(("x-servegate-variant", "stable"),))
            for r in requests
            if r.input["data"] != bad
        ]
        call = stub.StreamPredictions2(iter(requests))
        answers = list(call)
        variant = variant_of(call)
        labels = {"route": "mlp", "variant": variant or "", "protocol": "grpc", "code": "200"}
        served = gw.metric("servegate_requests_total", **labels)
    assert [a.sequence_id for a in answers] == ["s0", "s1", "s2", "s3"]
    assert answers[1].status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert answers[1].status.message and not answers[1].prediction
    good = [json.loads(a.prediction)["outputs"] for a in answers if not a.HasField("status")]
    expected = [json.loads(s.prediction)["outputs"] for s in singles]
    # The stream may land on the ONNX canary: equal to TorchScript within float tolerance.
    assert len(good) == len(expected)
    for got, want in zip(good, expected, strict=True):
        assert got == [pytest.approx(row, abs=1e-5) for row in want]
    assert variant in {"stable", "canary"}
    assert served == 3 + (3 if variant == "stable" else 0)  # the whole stream on one variant
