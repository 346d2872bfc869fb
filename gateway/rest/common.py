"""Request plumbing shared by the REST layers: bounded body reads, request ids, headers."""

from __future__ import annotations

import re
import uuid

from starlette.requests import Request

from gateway.errors import BadRequest, PayloadTooLarge
from gateway.routing import RequestFacts, facts_from
from gateway.state import Gateway, Table

REQUEST_ID = "X-Request-Id"
VARIANT = "X-Servegate-Variant"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id(request: Request) -> str:
    """The client's id when it is a sane token, else a fresh one (never echo arbitrary bytes)."""
    sent = request.headers.get(REQUEST_ID)
    return sent if sent and _CLIENT_ID.match(sent) else uuid.uuid4().hex


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit``: up front from
    Content-Length, else while streaming, without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("invalid Content-Length")
        if int(declared) > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def facts(table: Table, request: Request, model: str, version: str | None) -> RequestFacts:
    route = table.loaded.config.routes.get(model)
    if route is None:
        return RequestFacts(version=version)
    return facts_from(route, request.headers, request.cookies, version)


def headers(rid: str, variant: str | None) -> dict[str, str]:
    out = {REQUEST_ID: rid}
    if variant:
        out[VARIANT] = variant
    return out


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw
