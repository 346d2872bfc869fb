"""TorchServe-compatible inference API: ``POST /predictions/{model}[/{version}]``, ``GET /ping``.

Bodies go to TorchServe unchanged and its answer comes back unchanged (status, body, content
type), so an existing TorchServe client works by changing only its URL. Before that, the body
must have a Content-Type the gateway takes and, when it is JSON, pass its limits
(``gateway.bodies``); anything else is the client's 400/415 and never reaches a batch.
Errors the gateway raises use TorchServe's JSON error shape ``{"code", "type", "message"}``.

``/predictions`` is the hot path, so it is a bare ASGI handler (``PredictionsAPI``) in front of
the FastAPI app rather than a FastAPI route: no route table, dependency solving, middleware
stack or Request/Response objects per call, and the body is forwarded as the bytes received.
``make bench-gateway`` measured those layers at about a third of the gateway's CPU per request.
Every other path (``/ping``, OIP v2, unknown paths) falls through to the FastAPI app. As in
TorchServe, trailing slashes are ignored (``/predictions/mlp/`` is ``/predictions/mlp``).

Streaming: a JSON body with ``"stream": true`` (or ``Accept: text/event-stream``, which sets it)
is answered as Server-Sent Events (``gateway.rest.sse``): ``data: {"token": "..."}`` per piece
of text as the worker produces it, then ``data: <the whole answer>``, then the end. A refusal
before the stream began is TorchServe's JSON error as for any request; an error after it began
is a last ``event: error`` with ``data: {"code", "type", "message"}``.
"""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request, cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import bodies
from gateway.backends import BackendResponse, Payload
from gateway.dataplane import DataPlane, Inference
from gateway.errors import GatewayError
from gateway.rest import sse
from gateway.rest.common import REQUEST_ID, dataplane_of, read_asgi_body, sane_request_id
from gateway.routing import RequestFacts
from gateway.streams import Piece

log = logging.getLogger(__name__)
router = APIRouter()
PREFIX = "/predictions/"
_RID = REQUEST_ID.lower().encode()
_VARIANT = b"x-servegate-variant"


class PredictionsAPI:
    """``/predictions/{model}[/{version}]`` on bare ASGI; everything else goes to ``app``."""

    def __init__(self, app: ASGIApp, dataplane: DataPlane) -> None:
        self.app = app
        self.dataplane = dataplane
        self.limits = bodies.JsonLimits.of(dataplane.settings)  # the process's settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            parts = scope["path"][len(PREFIX) :].rstrip("/").split("/")
            if len(parts) <= 2 and all(parts):
                await self._serve(scope, receive, send, parts)
                return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, parts: list[str]) -> None:
        headers = Headers(scope=scope)
        rid = sane_request_id(headers.get(REQUEST_ID))
        if scope["method"] != "POST":
            refusal = {
                "code": 405,
                "type": "MethodNotAllowedException",
                "message": "Method not allowed",
            }
            await _send(send, 405, json.dumps(refusal).encode(), rid=rid, allow="POST")
            return
        model, version = parts[0], parts[1] if len(parts) == 2 else None
        settings = self.dataplane.settings
        try:
            with self.dataplane.inference(model, "rest") as call:
                content_type = headers.get("content-type")
                kind = bodies.predictions_kind(content_type)
                body = await read_asgi_body(
                    receive, headers, settings.max_body_bytes, settings.body_timeout_s
                )
                bodies.check_predictions_body(body, kind, self.limits)
                facts = call.facts(
                    headers, lambda: cookie_parser(headers.get("cookie", "")), version
                )
                events = sse.wants_events(headers.get("accept"))
                streamed = bodies.streamed_body(body, kind, events, self.limits)
                if streamed is not None:
                    payload = Payload(streamed, "application/json")
                    await _stream(call, payload, facts, receive=receive, send=send, rid=rid)
                    return
                out = await call.infer(Payload(body, content_type), facts)
        except GatewayError as exc:
            await _send_error(send, exc, rid)
            return
        except ClientDisconnect:
            return
        except Exception:
            log.exception("unhandled error on %s", scope["path"])
            await _send_error(send, GatewayError(), rid)
            return
        await _send_answer(send, out.response, rid=rid, variant=out.variant.name)


async def _send_answer(send: Send, resp: BackendResponse, *, rid: str, variant: str) -> None:
    """A worker's answer as it came (status, body, content type), with the gateway's headers."""
    await _send(
        send, resp.status, resp.body, content_type=resp.content_type, rid=rid, variant=variant
    )


async def _stream(
    call: Inference,
    payload: Payload,
    facts: RequestFacts,
    *,
    receive: Receive,
    send: Send,
    rid: str,
) -> None:
    async with call.stream(payload, facts) as stream:
        variant = stream.variant.name
        if stream.refusal is not None:  # as a unary answer: TorchServe's error, unchanged
            await _send_answer(send, stream.refusal, rid=rid, variant=variant)
            return
        await sse.relay(send, receive, stream.pieces, EVENTS, sse.head(rid, variant))


class _Events:
    """``/predictions``' events: the worker's own lines, TorchServe's error shape."""

    def token(self, piece: Piece) -> bytes:
        return sse.event(piece.body)

    def answer(self, piece: Piece) -> bytes:
        return sse.event(piece.body)

    def error(self, status: int, message: str) -> bytes:
        kind = "ServiceUnavailableException" if status == 503 else "InternalServerException"
        if 400 <= status < 500:
            kind = "BadRequestException"
        body = {"code": status, "type": kind, "message": message}
        return sse.event(json.dumps(body).encode(), "error")


EVENTS = _Events()


async def _send_error(send: Send, exc: GatewayError, rid: str) -> None:
    body = {"code": exc.status, "type": exc.kind, "message": exc.message}
    await _send(
        send,
        exc.status,
        json.dumps(body).encode(),
        rid=rid,
        variant=exc.variant,
        close=exc.status == 408,  # the rest of a late body is not worth waiting for
    )


async def _send(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    rid: str,
    variant: str | None = None,
    close: bool = False,
    allow: str | None = None,
) -> None:
    raw = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
        (_RID, rid.encode()),
    ]
    if variant:
        raw.append((_VARIANT, variant.encode()))
    if close:
        raw.append((b"connection", b"close"))
    if allow:
        raw.append((b"allow", allow.encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


@router.get("/ping")
async def ping(request: Request) -> JSONResponse:
    if await dataplane_of(request).ready():
        return JSONResponse({"status": "Healthy"})
    return JSONResponse({"status": "Unhealthy"}, status_code=500)
