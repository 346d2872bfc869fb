"""Normalising what TorchServe hands a handler: a parsed JSON value, a str, or raw bytes."""

from __future__ import annotations

import json
from typing import Any

from handlers.errors import BadRequest


def json_object(body: object) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one (plain text, image bytes)."""
    if isinstance(body, dict):
        return body
    if isinstance(body, (bytes, bytearray)):
        stripped = bytes(body).lstrip()
        if not stripped.startswith(b"{"):
            return None
        try:
            value = json.loads(stripped)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None
        if isinstance(value, dict):
            return value
    if isinstance(body, str) and body.lstrip().startswith("{"):
        try:
            value = json.loads(body)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None
        return value if isinstance(value, dict) else None
    return None


def native_inputs(body: dict[str, Any]) -> list[Any]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest('expected a JSON object with a non-empty "inputs" list')
    return inputs
