"""JSON read with each fractional number kept as the bytes it was written as, and written back
with those bytes unchanged.

Splitting a joined answer (``gateway.joining``) re-renders every number of it: a MiniLM
answer of 32 embeddings is 12,288 floats, whose parsing and formatting took ~8 ms per group
with ``json`` (0.25 ms of gateway CPU per item). Kept as bytes, the numbers are copied, not
parsed and formatted (~1.3 ms per group), and each client gets the worker's own digits.
"""

from __future__ import annotations

import json
from typing import Any

# A fractional number is read as ``bytes`` (its text, encoded): JSON strings are ``str``, so
# the two never mix, and a row of numbers is joined back at C speed.
_AS_WRITTEN = str.encode


def loads(body: bytes) -> Any:
    """``json.loads``, fractional numbers as their ``bytes`` (integers and constants as usual)."""
    return json.loads(body, parse_float=_AS_WRITTEN)


def dumps(value: Any) -> bytes:
    """Compact JSON of what ``loads`` gave, its numbers as written."""
    if isinstance(value, bytes):
        return value
    kind = type(value)
    if kind is list:
        if all(type(v) is bytes for v in value):
            return b"[" + b",".join(value) + b"]"  # a row of numbers: the common, long case
        return b"[" + b",".join(dumps(v) for v in value) + b"]"
    if kind is dict:
        pairs = (json.dumps(k).encode() + b":" + dumps(v) for k, v in value.items())
        return b"{" + b",".join(pairs) + b"}"
    return json.dumps(value, separators=(",", ":")).encode()
