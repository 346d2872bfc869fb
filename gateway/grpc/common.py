"""What every gRPC service of the gateway shares: metadata in (sticky key, pin, request id),
metadata out (variant, request id), status codes for errors, the client's deadline.

One map turns an HTTP status (a ``GatewayError``'s, or the backend's own answer) into a gRPC
code, so REST and gRPC refuse the same requests for the same reasons.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any, NoReturn

import grpc

from gateway.backends import BackendResponse
from gateway.errors import BadRequest, GatewayError
from gateway.routing import RequestFacts, facts_from
from gateway.state import Table

REQUEST_ID = "x-request-id"
VARIANT = "x-servegate-variant"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
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


def code_for(http_status: int) -> Any:
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


class Metadata(Mapping[str, str]):
    """A call's text metadata with case-insensitive lookups (gRPC keys are lower case; route
    config names headers like ``X-User-Id``)."""

    def __init__(self, context: Any) -> None:
        self._items = {
            k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)
        }

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def cookies(self) -> dict[str, str]:
        raw = self._items.get("cookie")
        if not raw:
            return {}
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except CookieError:
            return {}
        return {name: morsel.value for name, morsel in jar.items()}

    def request_id(self) -> str:
        sent = self._items.get(REQUEST_ID)
        return sent if sent and _CLIENT_ID.match(sent) else uuid.uuid4().hex


def facts(table: Table, md: Metadata, model: str, version: str | None) -> RequestFacts:
    """The same facts REST reads from headers, read from metadata (empty version: none)."""
    route = table.loaded.config.routes.get(model)
    if route is None:
        return RequestFacts(version=version or None)
    cookies = md.cookies() if route.sticky is not None and route.sticky.cookie else {}
    return facts_from(route, md, cookies, version or None)


def deadline(context: Any) -> float | None:
    """Seconds left before the client's deadline, or None without one."""
    left = context.time_remaining()
    return None if left is None else max(float(left), 0.0)


def answer_metadata(rid: str, variant: str | None) -> tuple[tuple[str, str], ...]:
    if variant:
        return ((REQUEST_ID, rid), (VARIANT, variant))
    return ((REQUEST_ID, rid),)


async def abort(context: Any, exc: GatewayError, rid: str, *, sent: bool = False) -> NoReturn:
    """End the call with the error's code. The request id, and the variant when one was
    chosen, go in the initial metadata as on success (unless ``sent`` already)."""
    if not sent:
        await context.send_initial_metadata(answer_metadata(rid, exc.variant))
    await context.abort(code_for(exc.status), exc.message)
    raise AssertionError("unreachable: abort raises")
