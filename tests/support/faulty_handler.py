"""A TorchServe handler for canary tests: servegate's own handler with faults injected after it,
read from ``faults.json`` in the archive:

    error_share   share of requests answered 500: every round(1 / share)-th request, not a draw,
                  so that any window of n requests holds n * share errors, give or take one
                  (a 20% draw left 15 requests error-free 3.5% of the time: a flaky rollback)
    delay_ms      extra latency, once per batch
    cosine        perturb every output row to this cosine similarity with the true row
    die_on        a string: a batch holding a request whose body contains it kills the worker
                  (TorchServe answers the batch 500 "Worker died." and starts a new worker)
    oom_on        a string: a batch holding a request whose body contains it raises MemoryError
                  (TorchServe answers the batch 507 "Out of resources")

Packaged by ``tests.gateway.canary.support.faulty_archive``; runs in a real TorchServe worker.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

from handlers import servegate_handler

_faults: dict[str, Any] | None = None
_answered = 0


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[bytes] | None:
    global _faults, _answered
    if _faults is None:
        model_dir = Path(context.system_properties["model_dir"])
        _faults = json.loads((model_dir / "faults.json").read_text())
    marker = _faults.get("die_on")
    if data and isinstance(marker, str) and any(marker in str(r.get("body")) for r in data):
        os._exit(1)  # a worker dying under a request (OOM kill, segfault), for retry tests
    oom = _faults.get("oom_on")
    if data and isinstance(oom, str) and any(oom in str(r.get("body")) for r in data):
        raise MemoryError("injected: out of memory")
    answers = servegate_handler.handle(data, context)
    if data is None or answers is None:
        return answers
    if _faults.get("delay_ms"):
        time.sleep(_faults["delay_ms"] / 1000)
    out: list[bytes] = []
    share = _faults.get("error_share", 0.0)
    for idx, answer in enumerate(answers):
        _answered += 1
        if share and _answered % round(1 / share) == 0:
            context.set_response_status(500, "injected failure", idx)
            failure = {"code": 500, "type": "InternalServerError", "message": "injected failure"}
            out.append(json.dumps(failure).encode())
        elif "cosine" in _faults:
            out.append(_perturbed(answer, _faults["cosine"]))
        else:
            out.append(answer)
    return out


def _perturbed(answer: bytes, cosine: float) -> bytes:
    body = json.loads(answer)
    if not isinstance(body, dict) or "outputs" not in body:
        return answer  # an error answer: leave it alone
    body["outputs"] = [_rotate(row, cosine) for row in body["outputs"]]
    return json.dumps(body).encode()


def _rotate(row: list[float], cosine: float) -> list[float]:
    """``row`` plus a random orthogonal part, so that cos(row, result) == ``cosine``."""
    noise = [random.gauss(0.0, 1.0) for _ in row]
    norm2 = sum(x * x for x in row) or 1.0
    along = sum(n * x for n, x in zip(noise, row, strict=True)) / norm2
    ortho = [n - along * x for n, x in zip(noise, row, strict=True)]
    scale = (
        math.sqrt(norm2)
        * math.tan(math.acos(cosine))
        / (math.sqrt(sum(o * o for o in ortho)) or 1.0)
    )
    return [x + scale * o for x, o in zip(row, ortho, strict=True)]
