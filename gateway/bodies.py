"""What a request body may be, decided in the gateway before anything reaches a backend.

Content types (``/predictions``): ``application/json`` (or ``+json``) is a JSON request;
``text/plain`` is one text; ``application/octet-stream`` and ``image/*`` are raw bytes; no
Content-Type at all is raw bytes as TorchServe reads it. Each task's handler takes from these
what it understands. OIP v2 is JSON only (``application/json`` or no Content-Type). Forms
(``multipart/form-data``, ``application/x-www-form-urlencoded``) are refused with 415: TorchServe
would take such a body apart into form fields, so what the model saw would not be what was sent.
Every other type is 415 too, and a charset other than UTF-8 on text or JSON.

Bodies checked as JSON (a JSON type, or a body that starts with ``{`` on a type the handlers
sniff) must be UTF-8 without a byte order mark, parse, nest at most ``max_depth`` levels and
spell no integer with more than ``max_digits`` digits. Those limits keep hostile bodies (a
5000-digit integer, 100,000 levels of nesting) out of TorchServe's batches, where the worker's
own JSON parser would otherwise meet them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from gateway.errors import BadRequest, UnsupportedMediaType
from gateway.settings import GatewaySettings

BOM = b"\xef\xbb\xbf"
FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")
RAW = ("application/octet-stream",)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # unrolled: no catastrophic backtracking
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")
Kind = Literal["json", "text", "raw"]


@dataclass(frozen=True)
class JsonLimits:
    max_depth: int = 32
    max_digits: int = 100

    @classmethod
    def of(cls, settings: GatewaySettings) -> JsonLimits:
        return cls(settings.max_json_depth, settings.max_json_digits)


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """``("application/json", {"charset": "utf-8"})`` from a Content-Type header."""
    if not content_type:
        return "", {}
    media, *params = content_type.split(";")
    parsed = {}
    for param in params:
        key, _, value = param.partition("=")
        parsed[key.strip().lower()] = value.strip().strip('"').lower()
    return media.strip().lower(), parsed


def predictions_kind(content_type: str | None) -> Kind:
    """How ``/predictions`` reads a body of this type; 415 for the types it refuses."""
    media, params = media_type(content_type)
    if media == "application/json" or media.endswith("+json"):
        kind: Kind = "json"
    elif media == "text/plain":
        kind = "text"
    elif media in RAW or media.startswith("image/") or not media:
        return "raw"
    else:
        raise _refused(media, "application/json, text/plain, image/*, application/octet-stream")
    _utf8_only(media, params)
    return kind


def require_oip_json(content_type: str | None) -> None:
    media, params = media_type(content_type)
    if media and media != "application/json" and not media.endswith("+json"):
        raise _refused(media, "application/json")
    _utf8_only(media, params)


def require_oip_binary(content_type: str | None) -> None:
    """A body of the binary data extension: no type (Triton's client sends none), octet-stream
    or JSON (the header part)."""
    media, _ = media_type(content_type)
    if media and media not in ("application/octet-stream", "application/json"):
        raise _refused(media, "application/octet-stream")


def check_predictions_body(body: bytes, kind: Kind, limits: JsonLimits) -> None:
    """400 for a body the handlers would misread or choke on; the body itself is forwarded."""
    if body.startswith(BOM):
        raise BadRequest("request body starts with a UTF-8 byte order mark; send it without one")
    if kind == "json" or body.lstrip()[:1] == b"{":
        parse_json(body, limits)


def parse_json(body: bytes, limits: JsonLimits) -> Any:
    """The parsed body, or 400 naming what is wrong with it."""
    if body.startswith(BOM):
        raise BadRequest("request body starts with a UTF-8 byte order mark; send it without one")

    def bounded_int(literal: str) -> int:  # only integer literals pay for this call
        if len(literal.lstrip("-")) > limits.max_digits:
            raise BadRequest(f"request body has an integer over {limits.max_digits} digits")
        return int(literal)

    try:
        value = json.loads(body.decode("utf-8"), parse_int=bounded_int)
    except UnicodeDecodeError:
        raise BadRequest("request body is not valid UTF-8") from None
    except RecursionError:
        raise BadRequest(f"request body nests deeper than {limits.max_depth} levels") from None
    except ValueError:
        raise BadRequest("request body is not valid JSON") from None
    _check_depth(body, limits.max_depth)
    return value


def _check_depth(body: bytes, max_depth: int) -> None:
    """The nesting of a body known to be valid JSON, at C speed: with strings removed, each
    pass removes the innermost bracket pairs, so none are left after ``max_depth`` passes
    exactly when the body nests at most ``max_depth`` levels."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    for _ in range(max_depth):
        if not brackets:
            return
        brackets = _EMPTY_PAIR.sub(b"", brackets)
    if brackets:
        raise BadRequest(f"request body nests deeper than {max_depth} levels")


def _utf8_only(media: str, params: dict[str, str]) -> None:
    charset = params.get("charset")
    if charset is not None and charset not in ("utf-8", "utf8", "us-ascii"):
        raise UnsupportedMediaType(f"charset {charset} is not accepted for {media}; send UTF-8")


def _refused(media: str, accepted: str) -> UnsupportedMediaType:
    hint = ""
    if media == FORMS[1]:
        hint = " (curl -d sends it unless -H 'Content-Type: ...' says otherwise)"
    return UnsupportedMediaType(f"Content-Type {media} is not accepted{hint}; send {accepted}")


def streamed_body(body: bytes, kind: Kind, events: bool, limits: JsonLimits) -> bytes | None:
    """The body to forward when a ``/predictions`` client asked for a streamed answer (a JSON
    object with ``"stream": true``, or ``Accept: text/event-stream``, which sets that flag when
    the body has none), else None: the request is unary. Only JSON objects stream."""
    if kind != "json" and body.lstrip()[:1] != b"{":
        return None
    if not events and b'"stream"' not in body:
        return None  # the unary hot path: no second parse
    obj = parse_json(body, limits)
    if not isinstance(obj, dict):
        return None
    if obj.get("stream") is True:
        return body
    if events and "stream" not in obj:
        return json.dumps({**obj, "stream": True}).encode()
    return None
