"""How a worker learns that the client of a generation has gone.

TorchServe 0.12 never tells a worker that the client of its request disconnected: the
frontend drops the intermediate responses of a closed request and the worker generates on. So
the gateway, which sees the disconnect, leaves a marker: an empty file named after the request's
``X-Servegate-Request-Id`` in a directory both can reach (``SERVEGATE_CANCEL_DIR``; a shared
volume in docker-compose). The worker looks for it after every token and stops. The marker
carries no data and names only a request id the gateway made, checked against a strict
pattern here, so it cannot point outside its directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CANCEL_DIR_ENV = "SERVEGATE_CANCEL_DIR"
REQUEST_ID_HEADER = "x-servegate-request-id"
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{7,63}$")


class CancelSignal:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    @classmethod
    def from_env(cls) -> CancelSignal:
        configured = os.environ.get(CANCEL_DIR_ENV)
        return cls(Path(configured) if configured else None)

    def request_id(self, headers: Mapping[str, Any]) -> str | None:
        """The gateway's id of this request, or None (sent directly, or malformed: then a
        disconnect cannot be signalled, and the generation runs to its limit)."""
        for key, value in headers.items():
            if str(key).lower() == REQUEST_ID_HEADER:
                text = value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
                return text if REQUEST_ID.fullmatch(text) else None
        return None

    def is_set(self, request_id: str | None) -> bool:
        if self.directory is None or request_id is None:
            return False
        marker = self.directory / request_id
        if not marker.exists():
            return False
        # Another rank or a sweep may take it first: it was set all the same.
        with contextlib.suppress(OSError):
            marker.unlink()
        return True
