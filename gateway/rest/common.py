"""Request plumbing shared by the REST layers: bounded body reads, request ids, headers, the
gateway and data plane an app serves."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Mapping

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from gateway.dataplane import DataPlane
from gateway.errors import BadRequest, PayloadTooLarge, RequestTimeout
from gateway.state import Gateway

REQUEST_ID = "X-Request-Id"
VARIANT = "X-Servegate-Variant"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id(request: Request) -> str:
    return sane_request_id(request.headers.get(REQUEST_ID))


def sane_request_id(sent: str | None) -> str:
    """The client's id when it is a sane token, else a fresh one (never echo arbitrary bytes)."""
    return sent if sent and _CLIENT_ID.match(sent) else uuid.uuid4().hex


async def read_body(request: Request, limit: int, timeout_s: float = 30.0) -> bytes:
    return await read_asgi_body(request.receive, request.headers, limit, timeout_s)


async def read_asgi_body(
    receive: Receive, headers: Mapping[str, str], limit: int, timeout_s: float = 30.0
) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit``: up front from
    Content-Length, else while streaming, without reading the rest; 408 when all of it has
    not arrived within ``timeout_s`` (a client trickling its body holds a connection and a
    task). ``ClientDisconnect`` when the client goes away first."""
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("invalid Content-Length")
        if int(declared) > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
    try:
        async with asyncio.timeout(timeout_s):
            return await _read_chunks(receive, limit)
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout_s:g} s") from None


async def _read_chunks(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def headers(rid: str, variant: str | None) -> dict[str, str]:
    out = {REQUEST_ID: rid}
    if variant:
        out[VARIANT] = variant
    return out


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def dataplane_of(request: Request) -> DataPlane:
    dataplane: DataPlane = request.app.state.dataplane
    return dataplane
