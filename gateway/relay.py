"""One streamed request's upstream call: its pieces passed on as they arrive, measured against
the variant that serves it, and its worker told when the client leaves.

Counted as a unary attempt is (``servegate_requests_total`` with the outcome's code, latency
over the whole stream, in-flight, upstream errors, outlier ejection), plus the stream's own
series: time to the first token, tokens generated and tokens per second after the first
(``servegate_stream_*``). A stream is never retried: once a piece reached the client, a second
attempt could only repeat or contradict it.

Outcome codes: the upstream's status when it refused before streaming; 200 when the whole
answer arrived; the worker's code for an error line; 503 when the upstream broke off before
its answer; 499 when the client left first. In that last case, with ``cancel_dir`` set, the
relay leaves the empty marker ``<cancel_dir>/<request id>`` that the worker polls after every
token (``handlers/generation/cancel.py``) and closes the upstream connection; the marker is
swept after a minute in case no worker took it (``gateway.cancel``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from gateway.backends import BackendResponse, Payload, StreamReply
from gateway.cancel import client_left, new_request_id
from gateway.config import Route, Variant
from gateway.errors import BackendUnavailable, UpstreamError
from gateway.forwarding import CLIENT_CLOSED, observe
from gateway.metrics import ProtocolName
from gateway.state import Gateway, Table
from gateway.streams import Kind, Piece, StreamTooLong, generated_tokens
from gateway.streams import pieces as read_pieces

BROKEN_OFF = "the model server ended the stream before its answer"


@dataclass(frozen=True)
class Stream:
    """A streamed call once the upstream answered: ``refusal`` is its whole answer when it
    refused (status >= 400, nothing streamed), else ``pieces`` come as they arrive."""

    variant: Variant
    request_id: str
    refusal: BackendResponse | None
    pieces: AsyncIterator[Piece]


class Relay:
    def __init__(
        self,
        gw: Gateway,
        table: Table,
        route_name: str,
        route: Route,
        *,
        variant: Variant,
        protocol: ProtocolName,
    ) -> None:
        self.gw, self.table, self.route_name, self.route = gw, table, route_name, route
        self.variant, self.protocol = variant, protocol
        self.request_id = new_request_id()
        self.answer: bytes | None = None  # the whole answer, once it arrived
        self.status = CLIENT_CLOSED  # the outcome so far: the client left, unless told otherwise
        self._started = 0.0
        self._first: float | None = None
        self._tokens = 0

    @asynccontextmanager
    async def open(self, payload: Payload, timeout_s: float) -> AsyncIterator[Stream]:
        m, labels = self.gw.metrics, (self.route_name, self.variant.name)
        backend = self.table.backends[self.variant.backend]
        m.in_flight.labels(*labels).inc()
        self._started = time.perf_counter()
        try:
            async with backend.stream(self.variant, payload, timeout_s, self.request_id) as reply:
                yield self._stream(reply, await self._refusal(reply))
        except UpstreamError as exc:
            if exc.variant is None:  # not yet counted by ``_pieces``
                self._failed(exc)
            raise
        finally:
            m.in_flight.labels(*labels).dec()
            if self.status == CLIENT_CLOSED:
                self._client_left()
            observe(self.gw, labels, self.protocol, self.status, self._elapsed())
            ok = self.status < 500  # a client that left (499) is not the variant's failure
            self.gw.outliers.record(self.route_name, self.route, self.variant.name, ok=ok)

    async def _refusal(self, reply: StreamReply) -> BackendResponse | None:
        if reply.status < 400:
            return None
        body = b"".join([chunk async for chunk in reply.chunks])
        self.status = reply.status
        return BackendResponse(reply.status, body, reply.content_type)

    def _stream(self, reply: StreamReply, refusal: BackendResponse | None) -> Stream:
        pieces = _nothing() if refusal is not None else self._pieces(reply)
        return Stream(self.variant, self.request_id, refusal, pieces)

    async def _pieces(self, reply: StreamReply) -> AsyncIterator[Piece]:
        """The upstream's pieces up to its answer; an ``UpstreamError`` when it broke off
        first, counted here (the protocol layer may catch it to send it as an error event)."""
        try:
            try:
                async for piece in read_pieces(reply.chunks, reply.content_type):
                    self._seen(piece)
                    yield piece
                    if piece.kind is not Kind.TOKEN:
                        return  # the last line: anything after it is not the client's
            except StreamTooLong as exc:
                raise BackendUnavailable(str(exc)) from None
            raise BackendUnavailable(BROKEN_OFF)
        except UpstreamError as exc:
            self._failed(exc)
            raise

    def _failed(self, exc: UpstreamError) -> None:
        self.status = exc.status
        labels = (self.route_name, self.variant.name, self.protocol, exc.metric_kind)
        self.gw.metrics.upstream_errors.labels(*labels).inc()
        if exc.metric_kind == "auth_rejected":
            self.gw.metrics.auth_rejections.labels(self.variant.backend).inc()
        exc.variant = self.variant.name

    def _seen(self, piece: Piece) -> None:
        now = time.perf_counter()
        labels = (self.route_name, self.variant.name, self.protocol)
        m = self.gw.metrics
        if piece.kind is Kind.TOKEN:
            if self._first is None:
                self._first = now
                m.first_token.labels(*labels).observe(now - self._started)
            self._tokens += 1
            return
        if piece.kind is Kind.ERROR:
            self.status = piece.status
            return
        self.status, self.answer = 200, piece.body
        if self._first is None:
            return  # answered in one piece: not a stream of tokens
        tokens = generated_tokens(piece.body) or self._tokens
        m.tokens.labels(*labels).inc(tokens)
        if tokens >= 2 and now > self._first:
            m.tokens_per_second.labels(*labels).observe((tokens - 1) / (now - self._first))

    def _client_left(self) -> None:
        client_left(self.gw.settings.cancel_dir, self.request_id)

    def _elapsed(self) -> float:
        return time.perf_counter() - self._started


async def _nothing() -> AsyncIterator[Piece]:
    return
    yield  # an async generator that yields nothing
