"""Coalescing (issue 20, item 6) through a real gateway in front of the fake TorchServe:
concurrent single-item requests become fewer upstream requests, each client gets exactly the
answer it gets alone (native and OIP v2), a bad item gets its own 400 while its neighbours get
200, and requests, shadow copies and metrics still count client requests. A route without
``coalesce`` sends every request on its own."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.grpc.stubs import grpc_predict_v2_pb2 as oip_pb
from tests.gateway.grpc.support import channel, mlp_tensor, oip_stub
from tests.gateway.support import (
    RunningGateway,
    post_all,
    run_gateway,
    variant,
    wait_for,
    write_config,
)
from tests.support.fake_torchserve import FakeTorchServe

COALESCE = {"max_items": 8, "max_wait_ms": 500}
MINILM = ("minilm_torchscript", "1.0")
MLP = ("mlp_torchscript", "1.0")


def routes(**extra: Any) -> dict[str, Any]:
    """``minilm``/``mlp`` coalesce; ``minilm_alone``/``mlp_alone`` serve the same models
    without it (the reference answers)."""
    return {
        "minilm": {"variants": [variant("stable", MINILM[0], 100)], "coalesce": COALESCE, **extra},
        "minilm_alone": {"variants": [variant("stable", MINILM[0], 100)]},
        "mlp": {"variants": [variant("stable", MLP[0], 100)], "coalesce": COALESCE},
        "mlp_alone": {"variants": [variant("stable", MLP[0], 100)]},
    }


@contextmanager
def gateway(
    tmp_path: Path, fake_backends: dict[str, Any], **extra: Any
) -> Iterator[RunningGateway]:
    config = write_config(tmp_path / "gateway.yaml", fake_backends, routes(**extra))
    with run_gateway(config) as gw:
        yield gw


def alone(gw: RunningGateway, path: str, body: Any) -> httpx.Response:
    with gw.client() as client:
        return client.post(path, json=body)


def same_answer(got: httpx.Response, expected: httpx.Response) -> None:
    assert got.status_code == expected.status_code, got.text
    assert got.headers["content-type"] == expected.headers["content-type"]
    assert got.json() == expected.json()


def test_concurrent_single_texts_go_upstream_together(
    tmp_path: Path, fake_ts: FakeTorchServe, fake_backends: dict[str, Any]
) -> None:
    texts = [f"sentence number {i}" for i in range(8)]
    with gateway(tmp_path, fake_backends) as gw:
        answers = post_all(f"{gw.url}/predictions/minilm", [{"inputs": [t]} for t in texts])
        upstream = fake_ts.requests[MINILM]
        assert upstream < len(texts), upstream  # joined: fewer upstream requests than clients
        for text, got in zip(texts, answers, strict=True):
            same_answer(got, alone(gw, "/predictions/minilm_alone", {"inputs": [text]}))
        client = {"route": "minilm", "variant": "stable", "protocol": "rest", "code": "200"}
        assert gw.metric("servegate_requests_total", **client) == len(texts)
        labels = {"route": "minilm", "variant": "stable"}
        assert gw.metric("servegate_coalesce_items_sum", **labels) == len(texts)
        assert gw.metric("servegate_coalesce_items_count", **labels) == upstream


def test_plain_text_bodies_coalesce_as_bare_items(
    tmp_path: Path, fake_ts: FakeTorchServe, fake_backends: dict[str, Any]
) -> None:
    texts = [f"plain text {i}".encode() for i in range(6)]
    plain = {"Content-Type": "text/plain; charset=utf-8"}
    with gateway(tmp_path, fake_backends) as gw:
        answers = post_all(f"{gw.url}/predictions/minilm", list(texts), plain)
        assert fake_ts.requests[MINILM] < len(texts)
        with gw.client() as client:
            for text, got in zip(texts, answers, strict=True):
                same_answer(
                    got, client.post("/predictions/minilm_alone", content=text, headers=plain)
                )


def test_a_route_without_coalesce_sends_each_request_alone(
    tmp_path: Path, fake_ts: FakeTorchServe, fake_backends: dict[str, Any]
) -> None:
    with gateway(tmp_path, fake_backends) as gw:
        answers = post_all(f"{gw.url}/predictions/minilm_alone", [{"inputs": ["t"]}] * 6)
        assert [a.status_code for a in answers] == [200] * 6
        assert fake_ts.requests[MINILM] == 6
        assert gw.metric("servegate_coalesce_items_count", route="minilm_alone") == 0


@pytest.mark.parametrize("model", ["mlp", "minilm"])
def test_oip_rows_coalesced_get_the_answer_they_get_alone(
    tmp_path: Path, fake_ts: FakeTorchServe, fake_backends: dict[str, Any], model: str
) -> None:
    def body(i: int) -> dict[str, Any]:
        if model == "mlp":
            tensor = {"name": "features", "datatype": "FP32", "shape": [1, 16]}
            return {"id": f"r{i}", "inputs": [{**tensor, "data": [i / 10] * 16}]}
        tensor = {"name": "text", "datatype": "BYTES", "shape": [1]}
        return {"id": f"r{i}", "inputs": [{**tensor, "data": [f"text {i}"]}]}

    bodies = [body(i) for i in range(6)]
    with gateway(tmp_path, fake_backends) as gw:
        answers = post_all(f"{gw.url}/v2/models/{model}/infer", bodies)
        assert fake_ts.requests[MLP if model == "mlp" else MINILM] < len(bodies)
        for sent, got in zip(bodies, answers, strict=True):
            expected = alone(gw, f"/v2/models/{model}_alone/infer", sent).json()
            expected["model_name"] = model  # the public name is the route's
            assert got.status_code == 200, got.text
            assert got.json() == expected and got.json()["id"] == sent["id"]


def test_a_bad_item_gets_its_own_400_and_its_neighbours_their_answers(
    tmp_path: Path, fake_ts: FakeTorchServe, fake_backends: dict[str, Any]
) -> None:
    bodies: list[Any] = [{"inputs": [f"good {i}"]} for i in range(5)]
    bodies.insert(2, {"inputs": [12345]})  # not a text: the worker refuses the whole request
    with gateway(tmp_path, fake_backends) as gw:
        answers = post_all(f"{gw.url}/predictions/minilm", bodies)
        assert [a.status_code for a in answers] == [200, 200, 400, 200, 200, 200]
        for sent, got in zip(bodies, answers, strict=True):
            same_answer(got, alone(gw, "/predictions/minilm_alone", sent))
        labels = {"route": "minilm", "variant": "stable", "reason": "client_error"}
        assert gw.metric("servegate_coalesce_fallbacks_total", **labels) >= 1
        assert gw.metric("servegate_requests_total", route="minilm", code="400") == 1
        assert gw.metric("servegate_requests_total", route="minilm", code="200") == 5


def test_shadow_copies_and_request_metrics_count_client_requests(
    tmp_path: Path, fake_ts: FakeTorchServe, fake_backends: dict[str, Any]
) -> None:
    texts = [f"mirrored {i}" for i in range(6)]
    shadowed = {
        "variants": [variant("stable", MINILM[0], 100), variant("canary", "minilm_onnx", 0)],
        "shadow": {"variant": "canary", "percent": 100, "compare": "cosine"},
    }
    with gateway(tmp_path, fake_backends, **shadowed) as gw:
        answers = post_all(f"{gw.url}/predictions/minilm", [{"inputs": [t]} for t in texts])
        assert [a.status_code for a in answers] == [200] * len(texts)
        assert fake_ts.requests[MINILM] < len(texts)
        canary = {"route": "minilm", "variant": "canary"}
        # Answered; the copies may still be in flight.
        wait_for(
            lambda: gw.metric("servegate_shadow_requests_total", **canary) == len(texts),
            "a shadow copy per client request",
        )
        wait_for(
            lambda: gw.metric("servegate_canary_divergence_count", **canary) == len(texts),
            "a divergence sample per client request (each against its own split answer)",
        )
        stable = {"route": "minilm", "variant": "stable"}
        assert gw.metric("servegate_requests_total", **stable) == len(texts)


@pytest.mark.parametrize("raw", [False, True], ids=["contents", "raw_input_contents"])
def test_oip_grpc_rows_coalesced_get_the_answer_they_get_alone(
    tmp_path: Path, fake_ts: FakeTorchServe, fake_backends: dict[str, Any], raw: bool
) -> None:
    def request(model: str, i: int) -> Any:
        tensor = mlp_tensor([[(i - j) / 8 for j in range(16)]])
        req = oip_pb.ModelInferRequest(model_name=model, id=f"r{i}", inputs=[tensor])
        if raw:  # the same row as little-endian bytes, as Triton's client sends it
            req.raw_input_contents.append(struct.pack("<16f", *tensor.contents.fp32_contents))
            req.inputs[0].ClearField("contents")
        return req

    with gateway(tmp_path, fake_backends) as gw, channel(gw.grpc_address) as ch:
        stub = oip_stub(ch)
        calls = [stub.ModelInfer.future(request("mlp", i)) for i in range(6)]
        answers = [call.result(timeout=30) for call in calls]
        assert fake_ts.requests[MLP] < len(calls)
        for i, got in enumerate(answers):
            expected = stub.ModelInfer(request("mlp_alone", i), timeout=30)
            assert (got.id, got.model_name) == (f"r{i}", "mlp")
            assert list(got.outputs) == list(expected.outputs)
            assert list(got.raw_output_contents) == list(expected.raw_output_contents)
