"""The pooled HTTP/1.1 client every HTTP backend sends through (aiohttp, keep-alive).

aiohttp replaced httpx here after ``make bench-gateway``: under load, httpx's AsyncClient
(httpcore over anyio) took ~70% of the gateway's CPU, a tenth of it a failed ``import sniffio``
on every pool lock. ``HttpPool.send`` turns transport failures into ``UpstreamError``s so that
backends only decide what to call and what an answer means:

    connection refused / reset, truncated answer  -> BackendUnavailable (503; ``before_sent``
                                                     when the connection never opened)
    no complete answer within ``timeout_s``        -> BackendTimeout (504)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from gateway.errors import BackendTimeout, BackendUnavailable

log = logging.getLogger(__name__)
# Connections kept open per pool; well above any concurrency one gateway process reaches.
MAX_CONNECTIONS = 1024
KEEPALIVE_S = 60.0


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes
    content_type: str | None


@dataclass(frozen=True)
class StreamingReply:
    status: int
    content_type: str | None
    chunks: AsyncIterator[bytes]


async def _chunks(resp: aiohttp.ClientResponse, what: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.content.iter_any():
            yield chunk
    except Exception as exc:
        raise _upstream_error(exc, what) from None


def _upstream_error(exc: BaseException, what: str) -> BaseException:
    """A transport failure as the ``UpstreamError`` it stands for (anything else unchanged)."""
    if isinstance(exc, (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError)):
        log.warning("%s unreachable: %s", what, type(exc).__name__)
        unsent = BackendUnavailable("the model server is unavailable")
        unsent.before_sent = True  # no connection, so nothing of the request was sent
        return unsent
    if isinstance(exc, TimeoutError):
        return BackendTimeout("the model server did not answer in time")
    if isinstance(exc, aiohttp.ClientError):
        # The text could quote a URL or header: name the kind only.
        log.warning("%s unreachable: %s", what, type(exc).__name__)
        return BackendUnavailable("the model server is unavailable")
    return exc


class HttpPool:
    """One keep-alive connection pool shared by every backend and every routing table.

    The session is made on first use, inside the event loop that serves requests (aiohttp
    binds a session to the loop it was made in)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S)
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # never carry a backend's cookies across clients
            skip_auto_headers=("User-Agent",),
            trust_env=False,
        )
        return self._session

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes = b"",
        timeout_s: float,
        what: str,
    ) -> HttpReply:
        """One request, the whole answer read; ``what`` names the upstream in logs."""
        session = self._session or self._open()
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with session.request(
                method, url, headers=headers, data=body or None, timeout=timeout
            ) as resp:
                return HttpReply(resp.status, await resp.read(), resp.headers.get("Content-Type"))
        except Exception as exc:
            raise _upstream_error(exc, what) from None

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes = b"",
        timeout_s: float,
        what: str,
    ) -> AsyncIterator[StreamingReply]:
        """One request whose answer is read piece by piece (``StreamingReply.chunks``), each
        piece due within ``timeout_s`` of the last; leaving the context closes the connection
        unless the answer was read to its end."""
        session = self._session or self._open()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
        try:
            resp = await session.request(
                method, url, headers=headers, data=body or None, timeout=timeout
            )
        except Exception as exc:
            raise _upstream_error(exc, what) from None
        try:
            yield StreamingReply(resp.status, resp.headers.get("Content-Type"), _chunks(resp, what))
        finally:
            if resp.content.at_eof():
                resp.release()
            else:
                resp.close()  # an unread answer: never hand this connection to another request

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
