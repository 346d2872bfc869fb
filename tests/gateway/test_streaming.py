"""Streams through a real gateway from an in-process upstream that streams as a generation
worker does (``tests/support/stream_stub.py``): Server-Sent Events relayed piece by piece,
errors before and after the stream began, a client that leaves (the worker's marker), pins and
the stream metrics. The same through a real TorchServe:
tests/integration/test_gateway_generation.py.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.support import RunningGateway, run_gateway, variant, wait_for, write_config
from tests.support.stream_stub import StreamStub, stream_stub


@pytest.fixture
def cancel_dir(tmp_path: Path) -> Path:
    path = tmp_path / "cancel"
    path.mkdir()
    return path


@pytest.fixture
def stub(cancel_dir: Path) -> Iterator[StreamStub]:
    with stream_stub(cancel_dir) as running:
        yield running


@pytest.fixture
def gw(tmp_path: Path, stub: StreamStub, cancel_dir: Path) -> Iterator[RunningGateway]:
    route = {
        "variants": [
            variant("stable", "llm", 100, backend="s"),
            variant("canary", "llm", 0, backend="s"),
        ],
        "pin_header": "X-Servegate-Variant",
    }
    config = write_config(tmp_path / "gateway.yaml", {"s": stub.config()}, {"llm": route})
    with run_gateway(config, cancel_dir=cancel_dir) as running:
        yield running


def events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE event, as they arrive."""
    out, name = [], "message"
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            out.append((name, json.loads(line[len("data: ") :])))
            name = "message"
    return out


def test_tokens_arrive_as_events_then_the_whole_answer(gw: RunningGateway) -> None:
    body = {"inputs": "hi", "stream": True, "tokens": 6, "delay": 0.01}
    with httpx.stream("POST", f"{gw.url}/predictions/llm", json=body, timeout=30) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-servegate-variant"] == "stable"
        got = events(resp)
    *tokens, (name, last) = got
    assert [t["token"] for _, t in tokens] == [f"t{i} " for i in range(6)]
    assert name == "message" and last["generated_text"] == "t0 t1 t2 t3 t4 t5 "
    labels = {"route": "llm", "variant": "stable", "protocol": "rest"}
    assert gw.metric("servegate_requests_total", **labels, code="200") == 1
    assert gw.metric("servegate_stream_first_token_seconds_count", **labels) == 1
    assert gw.metric("servegate_stream_tokens_total", **labels) == 6
    assert gw.metric("servegate_stream_tokens_per_second_count", **labels) == 1


def test_each_event_is_sent_as_its_token_arrives(gw: RunningGateway) -> None:
    body = {"inputs": "hi", "stream": True, "tokens": 4, "delay": 0.3}
    arrivals = []
    started = time.monotonic()
    with httpx.stream("POST", f"{gw.url}/predictions/llm", json=body, timeout=30) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 5
    # Buffered, all would arrive together after ~1.2 s; relayed, they are ~0.3 s apart.
    assert arrivals[0] < 0.9 and arrivals[-1] - arrivals[0] > 0.6


def test_accept_event_stream_asks_for_a_stream(gw: RunningGateway, stub: StreamStub) -> None:
    headers = {"Accept": "text/event-stream"}
    body = {"inputs": "hi", "tokens": 2}
    with httpx.stream(
        "POST", f"{gw.url}/predictions/llm", json=body, headers=headers, timeout=30
    ) as resp:
        got = events(resp)
    assert [e["token"] for _, e in got[:-1]] == ["t0 ", "t1 "]


def test_a_unary_request_is_unchanged(gw: RunningGateway) -> None:
    resp = httpx.post(f"{gw.url}/predictions/llm", json={"inputs": "hi", "tokens": 2}, timeout=30)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["generated_text"] == "t0 t1 "


def test_a_pin_holds_for_a_stream(gw: RunningGateway) -> None:
    headers = {"X-Servegate-Variant": "canary"}
    body = {"inputs": "hi", "stream": True, "tokens": 1}
    with httpx.stream(
        "POST", f"{gw.url}/predictions/llm", json=body, headers=headers, timeout=30
    ) as resp:
        assert resp.headers["x-servegate-variant"] == "canary"
        events(resp)


def test_a_refusal_before_the_stream_is_torchserves_error(gw: RunningGateway) -> None:
    body = {"inputs": "hi", "stream": True, "status": 400}
    resp = httpx.post(f"{gw.url}/predictions/llm", json=body, timeout=30)
    assert resp.status_code == 400
    assert resp.json() == {"code": 400, "type": "BadRequest", "message": "refused"}


@pytest.mark.parametrize(
    ("field", "code", "message"),
    [
        ("break_after", 503, "the model server"),
        ("error_after", 503, "Prediction failed"),
    ],
)
def test_an_error_after_the_stream_began_is_a_last_error_event(
    gw: RunningGateway, field: str, code: int, message: str
) -> None:
    # A pause before the break: pieces still buffered when a connection breaks are lost with
    # it (aiohttp raises at once), so the two before it are given time to go.
    body = {"inputs": "hi", "stream": True, "tokens": 5, field: 2, "delay": 0.2}
    with httpx.stream("POST", f"{gw.url}/predictions/llm", json=body, timeout=30) as resp:
        got = events(resp)
    assert [name for name, _ in got] == ["message", "message", "error"]
    _, error = got[-1]
    assert error["code"] == code and message in error["message"]
    labels = {"route": "llm", "variant": "stable", "protocol": "rest"}
    assert gw.metric("servegate_requests_total", **labels, code=str(code)) == 1


def test_a_client_that_leaves_stops_the_generation(
    gw: RunningGateway, stub: StreamStub, cancel_dir: Path
) -> None:
    body = {"inputs": "hi", "stream": True, "tokens": 200, "delay": 0.05}
    headers = {"X-Request-Id": "../../not-a-file-name"}
    with httpx.stream(
        "POST", f"{gw.url}/predictions/llm", json=body, headers=headers, timeout=30
    ) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                break  # and close the connection
    wait_for(lambda: stub.seen and stub.seen[0].finish == "cancelled", "the upstream to stop")
    seen = stub.seen[0]
    assert seen.tokens < 50
    # The upstream id is the gateway's own, a safe file name, never the client's.
    assert seen.request_id is not None and re.fullmatch(r"[0-9a-f]{32}", seen.request_id)
    labels = {"route": "llm", "variant": "stable", "protocol": "rest"}
    assert gw.metric("servegate_requests_total", **labels, code="499") == 1
    assert list(cancel_dir.iterdir()) == []  # the worker took its marker


def test_a_unary_client_that_leaves_stops_the_generation_too(
    gw: RunningGateway, stub: StreamStub, cancel_dir: Path
) -> None:
    body = {"inputs": "hi", "tokens": 200, "delay": 0.05}  # 10 s of generation
    with pytest.raises(httpx.ReadTimeout):  # the client gives up after 0.5 s and hangs up
        httpx.post(f"{gw.url}/predictions/llm", json=body, timeout=0.5)
    wait_for(lambda: stub.seen and stub.seen[0].finish == "cancelled", "the upstream to stop")
    seen = stub.seen[0]
    assert seen.tokens < 100
    assert seen.request_id is not None and re.fullmatch(r"[0-9a-f]{32}", seen.request_id)
    labels = {"route": "llm", "variant": "stable", "protocol": "rest"}
    wait_for(lambda: gw.metric("servegate_requests_total", **labels, code="499") == 1, "499")
    assert list(cancel_dir.iterdir()) == []  # the worker took its marker


def test_cancel_dir_must_be_absolute() -> None:
    from pydantic import ValidationError

    from gateway.settings import load_settings

    with pytest.raises(ValidationError, match="absolute path"):
        load_settings(cancel_dir=Path("relative/cancel"))


def test_a_cancel_dir_that_cannot_be_made_is_warned_about_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container's read-only root must not keep the gateway from serving."""
    from servegate.commands.gateway_cmd import _cancel_dir

    monkeypatch.delenv("SERVEGATE_GATEWAY_CANCEL_DIR", raising=False)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert _cancel_dir(blocked / "cancel") is None
    assert "cannot make the cancel directory" in caplog.text
    assert _cancel_dir(tmp_path / "cancel") == (tmp_path / "cancel").resolve()


def _grpc_request(body: dict[str, Any]) -> Any:
    from tests.gateway.grpc.support import predictions

    return predictions("llm", json.dumps(body).encode())


def test_grpc_stream_predictions_relays_each_piece(gw: RunningGateway) -> None:
    from tests.gateway.grpc.support import channel, torchserve_stub, variant_of

    pin = (("x-servegate-variant", "canary"),)
    body = {"inputs": "hi", "stream": True, "tokens": 3}
    with channel(gw.grpc_address) as ch:
        call = torchserve_stub(ch).StreamPredictions(_grpc_request(body), metadata=pin)
        messages = [json.loads(m.prediction) for m in call]
        assert variant_of(call) == "canary"
    assert messages[:-1] == [{"token": f"t{i} "} for i in range(3)]
    assert messages[-1]["generated_text"] == "t0 t1 t2 "
    labels = {"route": "llm", "variant": "canary", "protocol": "grpc"}
    assert gw.metric("servegate_stream_first_token_seconds_count", **labels) == 1


def test_grpc_stream_errors_end_the_call_with_their_code(gw: RunningGateway) -> None:
    import grpc

    from tests.gateway.grpc.support import channel, torchserve_stub

    with channel(gw.grpc_address) as ch:
        stub = torchserve_stub(ch)
        refused = stub.StreamPredictions(_grpc_request({"inputs": "x", "status": 400}))
        with pytest.raises(grpc.RpcError) as before:
            list(refused)
        got = []
        broken = stub.StreamPredictions(
            # The break comes after a pause: pieces still buffered when a connection breaks
            # are lost with it (aiohttp raises at once), so the test gives them time to go.
            _grpc_request({"inputs": "x", "stream": True, "break_after": 2, "delay": 0.2})
        )
        with pytest.raises(grpc.RpcError) as after:
            for message in broken:
                got.append(message)
    assert before.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(got) == 2
    assert after.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_grpc_client_that_cancels_stops_the_generation(
    gw: RunningGateway, stub: StreamStub
) -> None:
    from tests.gateway.grpc.support import channel, torchserve_stub

    body = {"inputs": "hi", "stream": True, "tokens": 200, "delay": 0.05}
    with channel(gw.grpc_address) as ch:
        call = torchserve_stub(ch).StreamPredictions(_grpc_request(body))
        next(call)
        call.cancel()
    wait_for(lambda: stub.seen and stub.seen[0].finish == "cancelled", "the upstream to stop")
    assert stub.seen[0].tokens < 50
    labels = {"route": "llm", "variant": "stable", "protocol": "grpc"}
    wait_for(lambda: gw.metric("servegate_requests_total", **labels, code="499") == 1, "the 499")


def _oip_body(**parameters: Any) -> dict[str, Any]:
    prompt = {"name": "text_input", "datatype": "BYTES", "shape": [1], "data": ["hi"]}
    return {"id": "r1", "inputs": [prompt], "parameters": parameters}


@pytest.mark.parametrize(
    ("path", "parameters"),
    [
        ("generate_stream", {}),
        ("infer", {"stream": True}),
        ("versions/1.0/infer", {"stream": True}),
    ],
)
def test_oip_streams_as_server_sent_events(
    gw: RunningGateway, path: str, parameters: dict[str, Any]
) -> None:
    url = f"{gw.url}/v2/models/llm/{path}"
    body = _oip_body(tokens=3, **parameters)
    with httpx.stream("POST", url, json=body, timeout=30) as resp:
        assert resp.status_code == 200
        got = events(resp)
    *tokens, (name, last) = got
    assert [t["text_output"] for _, t in tokens] == ["t0 ", "t1 ", "t2 "]
    assert tokens[0][1]["model_name"] == "llm" and tokens[0][1]["model_version"] == "1.0"
    assert name == "message"
    assert last["outputs"][0]["data"] == ["t0 t1 t2 "]
    assert last["model_name"] == "llm" and last["id"] == "r1"


def test_oip_errors_keep_the_oip_shape(gw: RunningGateway) -> None:
    url = f"{gw.url}/v2/models/llm/generate_stream"
    refused = httpx.post(url, json=_oip_body(status=400), timeout=30)
    assert refused.status_code == 400 and refused.json() == {"error": "refused"}
    unknown = httpx.post(f"{gw.url}/v2/models/nope/generate_stream", json=_oip_body(), timeout=30)
    assert unknown.status_code == 404 and "error" in unknown.json()
    with httpx.stream(
        "POST", url, json=_oip_body(tokens=5, break_after=1, delay=0.2), timeout=30
    ) as resp:
        got = events(resp)
    assert [name for name, _ in got] == ["message", "error"]
    assert "the model server" in got[-1][1]["error"]


def test_a_streamed_answer_feeds_the_shadow_token_comparison(
    tmp_path: Path, stub: StreamStub
) -> None:
    route = {
        "variants": [
            variant("stable", "llm", 100, backend="s"),
            variant("canary", "llm", 0, backend="s"),
        ],
        "shadow": {"variant": "canary", "percent": 100, "compare": "tokens"},
    }
    config = write_config(tmp_path / "gateway.yaml", {"s": stub.config()}, {"llm": route})
    with run_gateway(config) as gw:
        body = {"inputs": "hi", "stream": True, "tokens": 4}
        with httpx.stream("POST", f"{gw.url}/predictions/llm", json=body, timeout=30) as resp:
            events(resp)
        labels = {"route": "llm", "variant": "canary", "measure": "tokens"}
        wait_for(
            lambda: gw.metric("servegate_canary_divergence_count", **labels) == 1, "a comparison"
        )
        assert gw.metric("servegate_canary_divergence_sum", **labels) == 1.0


def test_unary_grpc_calls_refuse_a_stream(gw: RunningGateway, stub: StreamStub) -> None:
    """TorchServe's unary gRPC answer would carry only a stream's first piece (and its worker
    was seen stuck after it): a stream asked for on a unary RPC is the client's 400."""
    import grpc

    from gateway.grpc.stubs import grpc_predict_v2_pb2 as oip_pb
    from tests.gateway.grpc.support import channel, oip_stub, torchserve_stub

    body = _grpc_request({"inputs": "hi", "stream": True})
    prompt = oip_pb.ModelInferRequest.InferInputTensor(
        name="text_input", datatype="BYTES", shape=[1]
    )
    prompt.contents.bytes_contents.append(b"hi")
    oip_request = oip_pb.ModelInferRequest(model_name="llm", inputs=[prompt])
    oip_request.parameters["stream"].bool_param = True
    with channel(gw.grpc_address) as ch:
        with pytest.raises(grpc.RpcError) as unary:
            torchserve_stub(ch).Predictions(body)
        with pytest.raises(grpc.RpcError) as oip:
            oip_stub(ch).ModelInfer(oip_request)
    assert unary.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "StreamPredictions" in (unary.value.details() or "")
    assert oip.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stub.seen == []  # nothing reached the upstream
