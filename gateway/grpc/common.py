"""What every gRPC service of the gateway shares: metadata in (sticky key, pin, request id,
cookies), metadata out (variant, request id), the client's deadline. Errors and their status
codes are ``status.py``'s.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any

import grpc

REQUEST_ID = "x-request-id"
VARIANT = "x-servegate-variant"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class Metadata(Mapping[str, str]):
    """A call's text metadata with case-insensitive lookups (gRPC keys are lower case; route
    config names headers like ``X-User-Id``)."""

    def __init__(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
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


def deadline(context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
    """Seconds left before the client's deadline, or None without one."""
    left = context.time_remaining()
    return None if left is None else max(float(left), 0.0)


def answer_metadata(rid: str, variant: str | None) -> tuple[tuple[str, str], ...]:
    if variant:
        return ((REQUEST_ID, rid), (VARIANT, variant))
    return ((REQUEST_ID, rid),)
