"""Normalising what TorchServe hands a handler: a parsed JSON value, a str, or raw bytes."""

from __future__ import annotations

import json
from typing import Any

from handlers.errors import BadRequest


def json_object(body: object) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one (plain text, image bytes)."""
    if _has_bom(body):
        # Read as text, a byte order mark would be a character of it: refuse, never misread.
        raise BadRequest("request body starts with a UTF-8 byte order mark; send it without one")
    if isinstance(body, dict):
        return body
    if isinstance(body, (bytes, bytearray)):
        stripped = bytes(body).lstrip()
        if not stripped.startswith(b"{"):
            return None
        value = _loads(stripped)
        if isinstance(value, dict):
            return value
    if isinstance(body, str) and body.lstrip().startswith("{"):
        value = _loads(body)
        return value if isinstance(value, dict) else None
    return None


def _has_bom(body: object) -> bool:
    if isinstance(body, (bytes, bytearray)):
        return body[:3] == b"\xef\xbb\xbf"
    return isinstance(body, str) and body[:1] == "\ufeff"


def _loads(text: str | bytes) -> Any:
    """``json.loads``, with everything it can raise on hostile input (an integer over Python's
    4300-digit limit is a plain ``ValueError``, deep nesting a ``RecursionError``) a 400."""
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("request body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. "Exceeds the limit (4300 digits) for integer string ..."
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


def native_inputs(body: dict[str, Any]) -> list[Any]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest('expected a JSON object with a non-empty "inputs" list')
    return inputs
