"""``Inference.stream`` on its own, against in-process fake backends: pieces cut from chunks
however they arrive, the variant chosen as for unary calls, outcomes and stream metrics, the
marker left when the consumer goes before the answer, an upstream that breaks off."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.backends import Payload, StreamReply
from gateway.config import LoadedConfig, Variant, validate_config
from gateway.dataplane import DataPlane
from gateway.errors import BackendUnavailable
from gateway.settings import load_settings
from gateway.state import Gateway, Table
from gateway.streams import Kind, Piece
from tests.gateway.test_dataplane import ROUTES, FakeBackend, requests, run

PAYLOAD = Payload(b'{"inputs": "hi", "stream": true}', "application/json")
ANSWER = {"generated_text": "a b", "details": {"generated_tokens": 2}}


class StreamingBackend(FakeBackend):
    """Streams ``chunks`` as JSON lines; records the request ids it was given."""

    def __init__(self, name: str, chunks: list[bytes]) -> None:
        super().__init__(name)
        self.chunks = chunks
        self.request_ids: list[str] = []

    @asynccontextmanager
    async def stream(
        self, variant: Variant, payload: Payload, timeout_s: float, request_id: str
    ) -> AsyncIterator[StreamReply]:
        self.request_ids.append(request_id)

        async def chunks() -> AsyncIterator[bytes]:
            for chunk in self.chunks:
                yield chunk

        yield StreamReply(200, "application/jsonlines", chunks())


def plane(backend: FakeBackend, **settings: Any) -> DataPlane:
    url = {"inference_url": "http://127.0.0.1:9"}
    config = validate_config({"backends": {"a": url, "b": url}, "routes": ROUTES})
    gw = Gateway(load_settings(**settings), LoadedConfig(config, "v1"), primary=False)
    gw.table = Table(gw.table.loaded, {"a": backend, "b": backend})
    return DataPlane(gw)


async def collect(dp: DataPlane, headers: dict[str, str], leave_after: int = -1) -> list[Piece]:
    got: list[Piece] = []
    with dp.inference("mlp", "rest") as call:
        async with call.stream(PAYLOAD, call.facts(headers, dict, None)) as stream:
            assert stream.refusal is None
            async for piece in stream.pieces:
                got.append(piece)
                if len(got) == leave_after:
                    break
    return got


def sample(dp: DataPlane, name: str, variant: str = "stable") -> float:
    labels = {"route": "mlp", "variant": variant, "protocol": "rest"}
    return dp.gw.metrics.registry.get_sample_value(name, labels) or 0.0


def test_lines_are_cut_from_chunks_however_they_arrive() -> None:
    lines = b'{"token":"a"}\n{"token":" b"}\n' + json.dumps(ANSWER).encode() + b"\n"
    chunks = [lines[:5], lines[5:20], lines[20:21], lines[21:]]
    dp = plane(StreamingBackend("a", chunks))
    got = run(dp, collect(dp, {}))
    assert [(p.kind, p.text) for p in got] == [
        (Kind.TOKEN, "a"),
        (Kind.TOKEN, " b"),
        (Kind.ANSWER, ""),
    ]
    assert json.loads(got[-1].body) == ANSWER
    assert requests(dp, "mlp", "stable", "200") == 1
    assert sample(dp, "servegate_stream_first_token_seconds_count") == 1
    assert sample(dp, "servegate_stream_tokens_total") == 2


def test_a_backend_that_does_not_stream_answers_in_one_piece_on_the_pinned_variant() -> None:
    dp = plane(FakeBackend("a"))
    got = run(dp, collect(dp, {"X-Pin": "canary"}))
    assert [p.kind for p in got] == [Kind.ANSWER]
    assert json.loads(got[0].body) == {"variant": "canary"}
    assert requests(dp, "mlp", "canary", "200") == 1
    assert sample(dp, "servegate_stream_first_token_seconds_count", "canary") == 0


def test_a_consumer_that_leaves_is_499_and_leaves_the_marker(tmp_path: Path) -> None:
    backend = StreamingBackend("a", [b'{"token":"a"}\n', b'{"token":"b"}\n'])
    dp = plane(backend, cancel_dir=tmp_path)
    run(dp, collect(dp, {}, leave_after=1))
    assert requests(dp, "mlp", "stable", "499") == 1
    (request_id,) = backend.request_ids
    assert [p.name for p in tmp_path.iterdir()] == [request_id]


def test_an_upstream_that_breaks_off_is_a_503_of_the_variant() -> None:
    dp = plane(StreamingBackend("a", [b'{"token":"a"}\n']))
    with pytest.raises(BackendUnavailable, match="before its answer"):
        run(dp, collect(dp, {}))
    assert requests(dp, "mlp", "stable", "503") == 1


def test_the_shadow_copy_of_a_stream_goes_over_http() -> None:
    """A gRPC client's stream carries TorchServe's ``inputs``; its shadow copy must not (a
    backend would send those to TorchServe's unary gRPC Predictions)."""
    routes = {"mlp": {**ROUTES["mlp"], "shadow": {"variant": "canary", "percent": 100}}}
    url = {"inference_url": "http://127.0.0.1:9"}
    config = validate_config({"backends": {"a": url, "b": url}, "routes": routes})
    gw = Gateway(load_settings(), LoadedConfig(config, "v1"), primary=False)
    stable, shadow = FakeBackend("a"), FakeBackend("b")
    gw.table = Table(gw.table.loaded, {"a": stable, "b": shadow})
    dp = DataPlane(gw)
    grpc_payload = Payload(PAYLOAD.body, "application/octet-stream", {"data": PAYLOAD.body})

    async def work() -> None:
        with dp.inference("mlp", "grpc") as call:
            async with call.stream(grpc_payload, call.facts({}, dict, None)) as stream:
                async for _ in stream.pieces:
                    pass

    run(dp, work())
    ((variant, copy, _),) = shadow.calls
    assert variant == "canary" and copy.inputs is None and copy.body == PAYLOAD.body
