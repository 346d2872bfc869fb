"""TorchServe's inference key, read from its ``key_file.json`` and re-read when the file
changes or TorchServe rejects the key (keys expire and are rewritten on restart)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


class KeyFileReader:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._key: str | None = None

    def key(self) -> str | None:
        """The current inference key (cached until the file's mtime or size changes)."""
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except OSError:
            return self._key
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._key = self._read()
            self._stamp = stamp
        return self._key

    def refresh(self) -> bool:
        """Force a re-read; True when it produced a different key worth a retry."""
        old = self._key
        self._stamp = None
        return self.key() not in (None, old)

    def _read(self) -> str | None:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_text())
            return str(data["inference"]["key"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("cannot read the inference key from %s: %s", self.path, exc)
            return None
