"""Server-Sent Events over bare ASGI: a streamed answer relayed piece by piece, each event sent
(and flushed) as its piece arrives, for ``/predictions`` and OIP v2 alike.

Each protocol renders its own events (``Events``): one ``data:`` event per token, one with the
whole answer, then the end of the response; an error after the stream began is one final
``event: error`` in the protocol's error shape, never a silently cut stream. While the answer
streams, the client's connection is watched: when it goes away the relay is cancelled, which
closes the upstream call and tells the worker (``gateway.relay``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from starlette.types import Receive, Send

from gateway.errors import GatewayError
from gateway.streams import Kind, Piece

EVENT_STREAM = "text/event-stream"


class Events(Protocol):
    def token(self, piece: Piece) -> bytes: ...

    def answer(self, piece: Piece) -> bytes: ...

    def error(self, status: int, message: str) -> bytes: ...


def wants_events(accept: str | None) -> bool:
    return accept is not None and EVENT_STREAM in accept.lower()


def event(data: bytes, name: str | None = None) -> bytes:
    """One SSE event; every line of ``data`` gets its own ``data:`` field."""
    head = b"event: " + name.encode() + b"\n" if name else b""
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    return head + b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"


def head(rid: str, variant: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),  # a buffering proxy (nginx) in front: pass events on
        (b"x-request-id", rid.encode()),
        (b"x-servegate-variant", variant.encode()),
    ]


async def relay(
    send: Send,
    receive: Receive,
    pieces: AsyncIterator[Piece],
    events: Events,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Send the response head, then one event per piece until the answer or an error; return
    early, with the relay cancelled, when the client disconnects."""
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    pump = asyncio.create_task(_pump(send, pieces, events))
    watch = asyncio.create_task(_disconnected(receive))
    try:
        await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pump, watch):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await pump  # its error (a bug) surfaces here; a cancelled pump is the client leaving


async def _pump(send: Send, pieces: AsyncIterator[Piece], events: Events) -> None:
    try:
        async for piece in pieces:
            if piece.kind is Kind.TOKEN:
                frame = events.token(piece)
            elif piece.kind is Kind.ANSWER:
                frame = events.answer(piece)
            else:
                frame = events.error(piece.status, piece.message)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
    except GatewayError as exc:
        frame = events.error(exc.status, exc.message)
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
