"""A TorchServe handler that answers at once: one small JSON answer per request, no model, no
decoding. ``bench.ts_ceiling`` serves it to measure what TorchServe itself can pass (its
frontend, the worker round trip, batching), the ceiling of any model served one item per
request. Packaged as a handler file; runs inside a TorchServe worker."""

from __future__ import annotations

from typing import Any

ANSWER = '{"outputs": [0]}'


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[str] | None:
    if data is None:  # TorchServe's load-time call
        return None
    return [ANSWER] * len(data)
