"""``status.rpc``: what escapes a servicer method (unary or streaming) becomes its gRPC status in
one place; a bug is INTERNAL "internal error", its text logged and never sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from gateway.backends import BackendResponse
from gateway.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    GatewayError,
    ModelNotFound,
    PayloadTooLarge,
    RequestTimeout,
)
from gateway.grpc import status

Code = grpc.StatusCode


class FakeContext:
    """What the decorator uses of ``grpc.aio.ServicerContext``."""

    def __init__(self, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.metadata = metadata
        self.initial: list[tuple[tuple[str, str], ...]] = []
        self.aborted: tuple[Any, str] | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    async def send_initial_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.initial.append(metadata)

    async def abort(self, code: Any, details: str) -> None:
        self.aborted = (code, details)
        raise grpc.aio.AbortError()


class Service:
    def __init__(self, exc: BaseException | None) -> None:
        self.exc = exc

    @status.rpc
    async def Unary(self, request: str, context: Any) -> str:
        if self.exc is not None:
            raise self.exc
        return request.upper()

    @status.rpc
    async def Stream(self, request: str, context: Any) -> AsyncIterator[str]:
        yield request
        if self.exc is not None:
            raise self.exc
        yield request.upper()


def call(exc: BaseException | None, stream: bool = False, **metadata: str) -> FakeContext:
    context = FakeContext(tuple(metadata.items()))

    async def main() -> None:
        service = Service(exc)
        if stream:
            assert [a async for a in service.Stream("x", context)] == ["x", "X"]
        else:
            assert await service.Unary("x", context) == "X"

    try:
        asyncio.run(main())
    except grpc.aio.AbortError:
        assert context.aborted is not None
    return context


def with_variant(exc: GatewayError, variant: str) -> GatewayError:
    exc.variant = variant
    return exc


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (BadRequest("bad"), Code.INVALID_ARGUMENT),
        (ModelNotFound("bad"), Code.NOT_FOUND),
        (RequestTimeout("bad"), Code.DEADLINE_EXCEEDED),
        (PayloadTooLarge("bad"), Code.RESOURCE_EXHAUSTED),
        (BackendUnavailable("bad"), Code.UNAVAILABLE),
        (BackendTimeout("bad"), Code.DEADLINE_EXCEEDED),
        (GatewayError("bad"), Code.INTERNAL),
    ],
)
def test_each_error_kind_has_its_status(exc: GatewayError, code: Any) -> None:
    for stream in (False, True):
        context = call(exc, stream, **{"x-request-id": "rid-1"})
        assert context.aborted == (code, "bad")


def test_the_request_id_and_variant_go_in_the_initial_metadata() -> None:
    context = call(with_variant(BackendTimeout("slow"), "canary"), **{"x-request-id": "rid-1"})
    assert context.initial == [(("x-request-id", "rid-1"), ("x-servegate-variant", "canary"))]
    assert call(ModelNotFound("nope"), **{"x-request-id": "rid-2"}).initial == [
        (("x-request-id", "rid-2"),)
    ]


def test_a_stream_that_answered_sends_no_metadata_again() -> None:
    context = call(BadRequest("bad"), stream=True)
    assert context.initial == [] and context.aborted == (Code.INVALID_ARGUMENT, "bad")


def test_a_workers_answer_maps_by_its_status() -> None:
    for code_in, body, code, message in (
        (400, b'{"message": "bad row"}', Code.INVALID_ARGUMENT, "bad row"),
        (507, b'{"error": "full"}', Code.RESOURCE_EXHAUSTED, "full"),
        (200, b"not json", Code.INTERNAL, "inference failed"),  # a 2xx without an answer: 502
    ):
        exc = status.refusal(BackendResponse(code_in, body, "application/json"), "stable")
        assert call(exc).aborted == (code, message)


def test_an_unexpected_exception_is_internal_without_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "password=hunter2 at /srv/secret/path"
    for stream in (False, True):
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="gateway.grpc.status"):
            context = call(RuntimeError(secret), stream)
        assert context.aborted == (Code.INTERNAL, "internal error")
        assert all(secret not in str(m) for m in context.initial)
        assert secret in caplog.text  # logged server-side, with its traceback


def test_the_methods_own_abort_and_cancellation_pass_through() -> None:
    class Aborting:
        @status.rpc
        async def Unary(self, request: str, context: Any) -> str:
            await context.abort(Code.PERMISSION_DENIED, "no")
            raise AssertionError

    context = FakeContext()
    with pytest.raises(grpc.aio.AbortError):
        asyncio.run(Aborting().Unary("x", context))
    assert context.aborted == (Code.PERMISSION_DENIED, "no") and context.initial == []
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(Service(asyncio.CancelledError()).Unary("x", FakeContext()))


def test_answers_pass_unchanged() -> None:
    assert call(None).aborted is None
    assert call(None, stream=True).aborted is None
