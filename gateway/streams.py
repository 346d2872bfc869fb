"""What a streamed answer is made of, read without model knowledge, for every protocol.

A streaming handler (``handlers/generation/``) answers ``application/jsonlines``: one JSON line
``{"token": "..."}`` per new piece of text, as TorchServe intermediate responses, then the whole
answer as the last line (TorchServe's native ``{"generated_text", "details"}`` or an OIP v2
response), or a JSON error (``{"code", "type", "message"}`` / ``{"error"}``). Any other content
type is one answer in one piece (a handler that does not stream).

``pieces`` turns the upstream's chunks into ``Piece``s as they arrive: a chunk may hold several
lines or part of one, so lines are cut here, never assumed to be whole chunks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

log = logging.getLogger(__name__)
JSONLINES = "application/jsonlines"
# The longest line taken from upstream (the final answer holds the whole text).
MAX_LINE_BYTES = 16 * 1024 * 1024


class Kind(Enum):
    TOKEN = "token"  # a new piece of text: ``text``
    ANSWER = "answer"  # the whole answer: ``body``
    ERROR = "error"  # the worker's error, as its JSON: ``body``, ``message``


@dataclass(frozen=True)
class Piece:
    kind: Kind
    body: bytes  # the line as the worker sent it, without its newline
    text: str = ""  # TOKEN: the piece of text
    message: str = ""  # ERROR: what went wrong, for the client
    status: int = 200  # ERROR: the worker's code (500 when it names none)


class StreamTooLong(Exception):
    """A line over ``MAX_LINE_BYTES``."""


async def pieces(chunks: AsyncIterator[bytes], content_type: str) -> AsyncIterator[Piece]:
    if not content_type.startswith(JSONLINES):
        body = b"".join([chunk async for chunk in chunks])
        yield classify(body)
        return
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if len(pending) > MAX_LINE_BYTES:
            raise StreamTooLong(f"an upstream line is over {MAX_LINE_BYTES} bytes")
        for line in lines:
            if line.strip():
                yield classify(line)
    if pending.strip():
        yield classify(pending)


def classify(line: bytes) -> Piece:
    try:
        obj: Any = json.loads(line)
    except ValueError:
        return Piece(Kind.ANSWER, line)  # not ours to read: passed on as the answer
    if isinstance(obj, dict):
        if set(obj) == {"token"} and isinstance(obj["token"], str):
            return Piece(Kind.TOKEN, line, text=obj["token"])
        if set(obj) == {"code", "type", "message"} or set(obj) == {"error"}:
            message = obj.get("message", obj.get("error"))
            code = obj.get("code")
            status = code if isinstance(code, int) and 400 <= code <= 599 else 500
            return Piece(Kind.ERROR, line, message=str(message), status=status)
    return Piece(Kind.ANSWER, line)


def generated_tokens(answer: bytes) -> int | None:
    """``details.generated_tokens`` of a native answer, if it says."""
    try:
        obj = json.loads(answer)
    except ValueError:
        return None
    details = obj.get("details") if isinstance(obj, dict) else None
    count = details.get("generated_tokens") if isinstance(details, dict) else None
    return count if isinstance(count, int) and count >= 0 else None
