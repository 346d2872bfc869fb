"""TorchServe's keys, read from its ``key_file.json`` and re-read when the file changes.

The file holds three keys: ``inference`` (sent with every request; expires after
``token_expiration_min``), ``management`` (unused here) and ``API``, which never expires and is
the only thing that may ask TorchServe for a new inference key (see ``torchserve.py``).
TorchServe rewrites the file on start and when a key is regenerated, never on expiry.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
# How often the file is checked for changes on the request path. A rejected key forces a
# re-read at once, so this only bounds how long a rotated key goes unnoticed until then.
RECHECK_S = 1.0


@dataclass(frozen=True)
class Keys:
    inference: str | None = None
    api: str | None = None


class KeyFileReader:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._checked = -RECHECK_S
        self._keys = Keys()

    def key(self) -> str | None:
        """The current inference key (cached until the file's mtime or size changes)."""
        return self.keys().inference

    def keys(self) -> Keys:
        now = time.monotonic()
        if self.path is None or now - self._checked < RECHECK_S:
            return self._keys
        self._checked = now
        try:
            stat = self.path.stat()
        except OSError:
            return self._keys
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._keys = self._read()
            self._stamp = stamp
        return self._keys

    def refresh(self) -> bool:
        """Force a re-read; True when it produced a different inference key worth a retry."""
        old = self._keys.inference
        self._stamp = None
        self._checked = -RECHECK_S
        return self.key() not in (None, old)

    def _read(self) -> Keys:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_text())
            api = data.get("API", {}).get("key")
            return Keys(str(data["inference"]["key"]), str(api) if api else None)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error("cannot read the keys from %s: %s", self.path, type(exc).__name__)
            return Keys()
