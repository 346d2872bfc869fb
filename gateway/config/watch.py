"""Hot reload: poll the config file and swap the routing table when a valid change lands.

Polling (stat every ``interval``) rather than inotify: it sees editors that replace the file,
editors that rewrite it in place, and atomic renames alike. A change that fails validation (bad
values, YAML syntax error, truncated file) or vetting (``ReloadSink.admit``: a model its backend
does not serve, an edit a running analysis refuses) is logged and counted by ``sink.reject`` and
the last good table keeps serving. A refused edit is vetted again every ``RECHECK_S`` (a backend
may come to serve the model, an operator may pause the analysis), and reported again only when
the reason changes; the same bad bytes are not re-reported every tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Protocol

from gateway.config.load import LoadedConfig, parse_config, version_of
from gateway.errors import ConfigError

log = logging.getLogger(__name__)
RECHECK_S = 2.0


class ReloadSink(Protocol):
    def current_version(self) -> str: ...

    async def admit(self, loaded: LoadedConfig) -> str | None: ...

    def reject(self, version: str, reason: str) -> None: ...


class ConfigWatcher:
    def __init__(self, path: Path, interval_s: float, sink: ReloadSink) -> None:
        self.path = path
        self.interval_s = interval_s
        self.sink = sink
        self._seen: str | None = sink.current_version()
        self._refused: tuple[str, str] | None = None  # a valid file vetting refused, and why
        self._refused_at = 0.0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.check()

    async def check(self) -> None:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            if self._seen != "<unreadable>":
                self._seen = "<unreadable>"
                self.sink.reject("<unreadable>", f"cannot read {self.path}: {exc.strerror}")
            return
        version = version_of(raw)
        if version == self.sink.current_version():
            self._seen, self._refused = version, None
            return
        recheck = (
            self._refused is not None
            and self._refused[0] == version
            and time.monotonic() - self._refused_at >= RECHECK_S
        )
        if version == self._seen and not recheck:
            return
        self._seen = version
        try:
            config = parse_config(raw, str(self.path)).anchored(self.path)
        except ConfigError as exc:
            self.sink.reject(version, exc.message)
            return
        reason = await self.sink.admit(LoadedConfig(config, version, self.path))
        if reason is None:
            self._refused = None
            return
        self._refused_at = time.monotonic()
        if self._refused != (version, reason):
            self._refused = (version, reason)
            self.sink.reject(version, reason)
