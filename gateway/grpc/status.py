"""Every failure of a gRPC call as its status, in one place: the ``rpc`` decorator on each
servicer method (unary or streaming answers), not a try/except in each.

- A ``GatewayError`` ends the call with the code for its HTTP status (``CODES``: one map for
  the gateway's own errors and a backend's answers, so REST and gRPC refuse the same requests
  for the same reasons) and its message. The request id, and the variant when one was chosen,
  go in the initial metadata as on success (unless an answer already sent them).
- Anything else is a bug: logged here with its traceback, answered INTERNAL "internal error";
  its text never reaches the client.
- The call's own abort and its cancellation pass through.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any, NoReturn, TypeAlias, TypeVar, cast

import grpc

from gateway.backends import BackendResponse
from gateway.errors import BadRequest, GatewayError
from gateway.grpc.common import Metadata, answer_metadata
from gateway.streams import Piece

log = logging.getLogger(__name__)
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
    507: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
F = TypeVar("F", bound=Callable[..., Any])


def code_for(http_status: int) -> grpc.StatusCode:
    return CODES.get(http_status, grpc.StatusCode.INTERNAL)


def refusal(resp: BackendResponse, variant: str) -> GatewayError:
    """A worker's non-200 answer as an error with its status and message (either error shape:
    TorchServe's ``{"message"}`` or OIP's ``{"error"}``); a 2xx without an answer is a 502."""
    message = "inference failed"
    try:
        body = json.loads(resp.body)
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("error") or message)
    exc = BadRequest(message) if resp.status == 400 else GatewayError(message)
    exc.status = resp.status if resp.status >= 400 else 502
    exc.variant = variant
    return exc


def failed_piece(piece: Piece, variant: str) -> GatewayError:
    """A worker's error line in the middle of a streamed answer, as its error."""
    exc = GatewayError(piece.message or "inference failed")
    exc.status = piece.status
    exc.variant = variant
    return exc


def rpc(method: F) -> F:
    """Map what escapes a servicer method (``async def`` or async generator) to its status."""
    if inspect.isasyncgenfunction(method):
        return cast(F, _streaming(method))
    return cast(F, _unary(method))


class _Tracked:
    """The call's context as the servicer method sees it, noting whether the initial metadata
    has gone out: once it has, a failure must not send it again (grpc raises a UsageError)."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self.metadata_sent = False

    async def send_initial_metadata(self, metadata: Any) -> None:
        self.metadata_sent = True
        await self._context.send_initial_metadata(metadata)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _unary(
    method: Callable[[Any, Any, Context], Coroutine[Any, Any, Any]],
) -> Callable[[Any, Any, Context], Coroutine[Any, Any, Any]]:
    @functools.wraps(method)
    async def call(self: Any, request: Any, context: Context) -> Any:
        tracked = _Tracked(context)
        try:
            return await method(self, request, cast(Context, tracked))
        except Exception as exc:
            await _fail(context, exc, method, sent=tracked.metadata_sent)

    return call


def _streaming(
    method: Callable[[Any, Any, Context], AsyncGenerator[Any, None]],
) -> Callable[[Any, Any, Context], AsyncGenerator[Any, None]]:
    @functools.wraps(method)
    async def call(self: Any, request: Any, context: Context) -> AsyncGenerator[Any, None]:
        tracked = _Tracked(context)
        sent = False  # an answer sent the initial metadata
        try:
            async with contextlib.aclosing(
                method(self, request, cast(Context, tracked))
            ) as answers:
                async for answer in answers:
                    sent = True
                    yield answer
        except Exception as exc:
            await _fail(context, exc, method, sent=sent or tracked.metadata_sent)

    return call


async def _fail(
    context: Context, exc: Exception, method: Callable[..., Any], *, sent: bool = False
) -> NoReturn:
    if isinstance(exc, grpc.aio.AbortError):
        raise exc  # the method ended the call itself
    if not isinstance(exc, GatewayError):
        log.error("unexpected error in %s", method.__qualname__, exc_info=exc)
        exc = GatewayError()  # 500: INTERNAL, "internal error"
    await abort(context, exc, sent=sent)


async def abort(context: Context, exc: GatewayError, *, sent: bool = False) -> NoReturn:
    """End the call with the error's code. The request id, and the variant when one was
    chosen, go in the initial metadata as on success (unless ``sent`` already)."""
    if not sent:
        rid = Metadata(context).request_id()
        await context.send_initial_metadata(answer_metadata(rid, exc.variant))
    await context.abort(code_for(exc.status), exc.message)
    raise AssertionError("unreachable: abort raises")
