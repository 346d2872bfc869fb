"""Hot reload: poll the config file and swap the routing table when a valid change lands.

Polling (stat every ``interval``) rather than inotify: it sees editors that replace the file,
editors that rewrite it in place, and atomic renames alike. A change that fails validation (bad
values, YAML syntax error, truncated file) is logged and counted by ``sink.reject`` and the last
good table keeps serving; the same bad bytes are not re-reported every tick.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Protocol

from gateway.config import LoadedConfig, parse_config, version_of
from gateway.errors import ConfigError

log = logging.getLogger(__name__)


class ReloadSink(Protocol):
    def current_version(self) -> str: ...

    def reloaded(self, loaded: LoadedConfig) -> None: ...

    def reject(self, reason: str) -> None: ...


class ConfigWatcher:
    def __init__(self, path: Path, interval_s: float, sink: ReloadSink) -> None:
        self.path = path
        self.interval_s = interval_s
        self.sink = sink
        self._seen: str | None = sink.current_version()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.check()

    def check(self) -> None:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            if self._seen != "<unreadable>":
                self._seen = "<unreadable>"
                self.sink.reject(f"cannot read {self.path}: {exc.strerror}")
            return
        version = version_of(raw)
        if version in (self._seen, self.sink.current_version()):
            self._seen = version
            return
        self._seen = version
        try:
            config = parse_config(raw, str(self.path))
        except ConfigError as exc:
            self.sink.reject(exc.message)
            return
        self.sink.reloaded(LoadedConfig(config, version, self.path))
