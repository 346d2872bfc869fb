"""The HTTP/1.1 connection protocol of both listeners: uvicorn's httptools protocol with the
limits an edge proxy keeps (nginx ``client_header_timeout``/``large_client_header_buffers``,
Envoy ``request_headers_timeout``/``max_request_headers_kb``/``max_headers_count`` and its
downstream connection limit), which uvicorn does not have:

- a request's headers must arrive within ``header_timeout_s`` of its first byte (or of the
  connection being opened): else 408 and the connection is closed;
- at most ``max_header_count`` headers and ``max_header_bytes`` of head: else 431 and close,
  checked while the head arrives, so a megabyte of headers is never buffered;
- at most ``max_connections`` open connections per listener: one more is closed at accept.

When the gateway drains (``gateway.drain``) every answer says ``Connection: close``, and an idle
kept-alive connection is not closed under a request that may already be on its way: it stays
open until its next request, answered, or its keep-alive timeout.

uvicorn's own knobs do not cover these: ``timeout_keep_alive`` only bounds the idle time between
requests, ``h11_max_incomplete_event_size`` exists for h11 only (the gateway runs httptools for
its speed), and ``limit_concurrency`` answers 503 to requests rather than shedding connections.
The body has its own deadline in the app (``rest.common.read_asgi_body``). Refusals are
answered in the protocol's error shape (by path) and counted in
``servegate_http_refusals_total{reason}``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from prometheus_client import Counter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.rest.hangup import hung_up

LINGER_S = 2.0
_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}


@dataclass(frozen=True)
class ListenerLimits:
    header_timeout_s: float = 10.0
    max_header_count: int = 100
    max_header_bytes: int = 32 * 1024
    max_connections: int = 1024


class _HeadTooLarge(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[ListenerLimits] = ListenerLimits()
    refusals: ClassVar[Counter | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # waiting for (the rest of) a request head
        self._head_count = 0
        self._head_bytes = 0
        self._head_size = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_error: _HeadTooLarge | None = None
        self._refusing = False
        self._draining = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if len(self.connections) >= self.limits.max_connections:
            self.transport = transport  # type: ignore[assignment]
            self._count("connection_limit")
            transport.close()
            return
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm_head_timer()
        self._draining = getattr(self.server_state, "draining", False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self.cycle is not None and not self.cycle.response_complete:
            hung_up(self.cycle.scope)  # type: ignore[arg-type]
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusing:
            return
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._head_error is not None:
                self._refuse(431, "headers_too_large", "request headers are too large")
                return
            self.send_400_response("Invalid HTTP request received.")
            return
        # A head still incomplete after this much data will not fit (checked after
        # feeding, so a body arriving with its head in one read is not counted).
        if self._in_head and self._head_bytes > self.limits.max_header_bytes + 8192:
            self._refuse(431, "headers_too_large", "request headers are too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_count = 0
        self._head_size = 0
        if self._head_timer is None:
            self._arm_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_count += 1
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        if (
            self._head_count > self.limits.max_header_count
            or self._head_size > self.limits.max_header_bytes
        ):
            self._head_error = _HeadTooLarge()
            raise self._head_error  # httptools stops parsing; data_received answers 431
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._cancel_head_timer()
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False  # answered, then closed

    def shutdown(self) -> None:
        """The server drains: the last request known on this connection (the one in progress,
        or the last one pipelined behind it) is answered with ``Connection: close``. Unlike
        uvicorn's own shutdown, an idle connection is left open: closing it could reset a
        request the client is sending on it right now."""
        self._draining = True
        last = self.pipeline[0][0] if self.pipeline else self.cycle
        if last is not None and not last.response_complete:
            last.keep_alive = False

    def on_response_complete(self) -> None:
        self._in_head = True  # what comes next is the next request's head
        super().on_response_complete()

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        # Armed when a connection opens or a request begins, never while idle between
        # requests (uvicorn's timeout_keep_alive closes those).
        if not self._in_head or self.transport.is_closing():
            return
        if self.scope is None:  # not one byte of a request: nobody to answer
            self._count("header_timeout")
            self.transport.close()
            return
        self._refuse(408, "header_timeout", "request headers did not arrive in time")

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self._refusing = True
        self._count(reason)
        url = getattr(self, "url", b"") or b""
        if url.startswith(b"/v2"):
            body: dict[str, Any] = {"error": message}
        else:
            kind = "RequestTimeout" if status == 408 else "RequestHeaderFieldsTooLarge"
            body = {"code": status, "type": kind, "message": message}
        raw = json.dumps(body).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(raw)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + raw)
        # Lingering close, as nginx does: closing with unread data would reset the
        # connection and could lose the answer, so send FIN, discard what still comes in
        # (data_received while refusing) and close a little later.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)

    def _count(self, reason: str) -> None:
        if self.refusals is not None:
            self.refusals.labels(reason).inc()


def guarded_protocol(limits: ListenerLimits, refusals: Counter) -> type[HttpToolsProtocol]:
    """A protocol class enforcing ``limits`` (for uvicorn's ``Config(http=...)``)."""
    attrs = {"limits": limits, "refusals": refusals}
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), attrs)
