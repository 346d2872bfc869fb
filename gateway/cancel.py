"""Telling a generation worker that its client left.

TorchServe 0.12 never tells a worker that the client of its request disconnected, so the
gateway, which sees it, leaves an empty marker named after the request's id (its own, sent
upstream as ``X-Servegate-Request-Id``) in ``cancel_dir``, the directory TorchServe's workers
get as ``SERVEGATE_CANCEL_DIR`` (``handlers/generation/cancel.py``). A worker looks for it after
every token and stops. A marker no worker took (the answer was already complete) is removed
after ``MARKER_TTL_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from pathlib import Path

log = logging.getLogger("gateway")
MARKER_TTL_S = 60.0


def new_request_id() -> str:
    """The gateway's id for an upstream call: 32 hex digits, a safe file name."""
    return uuid.uuid4().hex


def leave_cancel_marker(directory: Path, request_id: str) -> Path | None:
    """The empty file a worker looks for to learn that this request's client left."""
    marker = directory / request_id
    try:
        marker.touch()
    except OSError as exc:
        log.error("cannot leave the cancel marker in %s: %s", directory, exc)
        return None
    return marker


def client_left(directory: Path | None, request_id: str) -> None:
    """Leave the marker (when a cancel directory is set) and sweep it after ``MARKER_TTL_S``;
    called from the event loop, where the client's departure is seen."""
    if directory is None:
        return
    marker = leave_cancel_marker(directory, request_id)
    if marker is not None:
        asyncio.get_running_loop().call_later(MARKER_TTL_S, _sweep, marker)


def _sweep(marker: Path) -> None:
    with contextlib.suppress(OSError):
        marker.unlink(missing_ok=True)
