"""The gateway's live state: the routing table (swapped whole, never mutated), the shared HTTP
client, metrics and windowed stats. One ``Gateway`` serves every listener of a process.

In a multi-process gateway the primary process also owns what exists once: the admin listener,
the status page's stats, backend scraping and canary analysis; worker processes only serve the
data plane, each watching the config file for itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gateway.backends import Backend, GrpcPool, HttpPool, make_backend
from gateway.canary.status import RouteStatus, StatusStore
from gateway.coalesce import Coalescer
from gateway.config import GatewayConfig, LoadedConfig, Route, audit, version_of
from gateway.config.watch import ConfigWatcher
from gateway.ejection import OutlierDetector
from gateway.errors import ConfigError
from gateway.metrics import GatewayMetrics, TableCollector
from gateway.readiness import ReadinessCollector, ReadinessTracker
from gateway.retries import RetryBudget
from gateway.scrape import ScrapedCollector
from gateway.settings import GatewaySettings
from gateway.shadow import ShadowSender
from gateway.stats import WindowStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Table:
    """Everything a request needs to be routed; a request keeps the table it started with."""

    loaded: LoadedConfig
    backends: Mapping[str, Backend]


@dataclass
class RequestCount:
    """Inference requests of this process (every protocol), for the drain's log lines."""

    started: int = 0
    answered: int = 0  # an answer went back (a success or an error)
    abandoned: int = 0  # cancelled: the client left, or the drain's bound cut it

    @property
    def in_flight(self) -> int:
        return self.started - self.answered - self.abandoned


class CanaryControl(Protocol):
    """What the admin API and the file watcher ask of the canary analysis
    (``gateway.canary.controller``); the admin API knows the analysis by this alone."""

    enabled: bool  # the analysis loop runs in this process

    def holds_weights(self, route: str) -> bool: ...

    def file_edited(self, route: str, what: str) -> None: ...

    def status(self, route: str) -> RouteStatus: ...

    def start(self, route: str, who: str) -> RouteStatus: ...

    def pause(self, route: str, who: str) -> RouteStatus: ...

    def resume(self, route: str, who: str) -> RouteStatus: ...

    def promote(self, route: str, who: str) -> RouteStatus: ...

    def abort(self, route: str, who: str) -> RouteStatus: ...


@dataclass(frozen=True)
class FileState:
    """The config file on disk against the config serving now."""

    version: str | None  # of the bytes on disk (None: unreadable)
    serving: bool
    error: str | None = None  # why it was rejected, when it was

    def as_json(self) -> dict[str, object]:
        return {"version": self.version, "serving": self.serving, "error": self.error}


class Gateway:
    def __init__(
        self, settings: GatewaySettings, loaded: LoadedConfig, primary: bool = True
    ) -> None:
        self.settings = settings
        self.primary = primary
        self.metrics = GatewayMetrics()
        self.stats = WindowStats(self.metrics.families)
        # One pooled client for every backend: connections are reused across tables.
        self.client = HttpPool()
        self.grpc_client = GrpcPool()
        self.scraped = ScrapedCollector(lambda: self.table.loaded.config)
        if primary:
            self.metrics.add_collector(self.scraped)
            self.metrics.add_collector(TableCollector(lambda: self.table.loaded))
        self.table = self._build(loaded)
        self.metrics.apply_config(loaded.config)
        self.readiness = ReadinessTracker()
        if primary:
            self.metrics.add_collector(
                ReadinessCollector(self.readiness, lambda: self.table.loaded.config)
            )
        # The file version the watcher last rejected, and why (cleared by the next apply).
        self.rejected: tuple[str, str] | None = None
        self.shadow = ShadowSender(self.metrics)
        self.outliers = OutlierDetector(self.metrics)
        self.retry_budget = RetryBudget()
        self.coalescer = Coalescer(self.metrics)
        self.canary: CanaryControl | None = None  # set by the server when analysis is wired
        self.admin_lock = asyncio.Lock()
        self.requests = RequestCount()
        # Set when this process starts draining: it no longer writes any state (admin writes
        # are refused), a successor or nobody does.
        self.draining = False
        self._tasks: list[asyncio.Task[None]] = []

    def _build(self, loaded: LoadedConfig) -> Table:
        renewed = self.metrics.key_renewals
        backends = {
            name: make_backend(
                name,
                cfg,
                self.client,
                lambda b, result: renewed.labels(b, result).inc(),
                self.grpc_client,
            )
            for name, cfg in loaded.config.backends.items()
        }
        return Table(loaded, backends)

    def apply(self, loaded: LoadedConfig) -> None:
        """Swap the whole routing table at once (a single reference assignment)."""
        self.table = self._build(loaded)
        self.metrics.apply_config(loaded.config)
        log.info("routing table %s applied (%d routes)", loaded.version, len(loaded.config.routes))

    def current_version(self) -> str:
        return self.table.loaded.version

    def apply_change(self, loaded: LoadedConfig) -> None:
        """An applied admin or analysis change: it serves, and the file on disk is it."""
        self.apply(loaded)
        self.rejected = None

    def reloaded(self, loaded: LoadedConfig) -> None:
        old = self.table.loaded
        self.apply(loaded)
        self.rejected = None
        if self.primary:  # every process reloads the same file: count and audit it once
            self.metrics.reloads.labels("applied").inc()
            _audit_file_edit(self.settings.audit_path(), old, loaded)

    def reject(self, version: str, reason: str) -> None:
        self.rejected = (version, reason)
        if self.primary:
            self.metrics.reloads.labels("rejected").inc()
        log.error("config change rejected, still serving %s: %s", self.table.loaded.version, reason)

    async def admit(self, loaded: LoadedConfig) -> str | None:
        """Vet a valid file edit and apply it; the reason it was refused, else None.

        Refused: a variant brought in that its backend answers it does not serve, or (with
        ``on_file_edit: refuse``) an edit of the variants of a route whose analysis is running.
        With ``on_file_edit: pause`` (the default) such an edit applies and pauses the analysis,
        as pausing it through the admin API and then changing the weights would."""
        try:
            await self.readiness.vet(self.table.backends, loaded.config, self.table.loaded.config)
        except ConfigError as exc:
            return exc.message
        async with self.admin_lock:
            if not _still_on_disk(loaded):
                return None  # an admin change rewrote the file meanwhile: the next poll reads it
            edited = self._analysed_routes_edited(loaded.config)
            refused = [r for r, route in edited if _policy(route) == "refuse"]
            if refused:
                return (
                    f"routes.{refused[0]}: a canary analysis is running and sets this route's "
                    "weights; the route's analysis refuses file edits (on_file_edit: refuse). "
                    f"`servegate canary pause {refused[0]}` or `abort {refused[0]}` first; the "
                    "file is read again then"
                )
            self.reloaded(loaded)
            if self.canary is not None:
                for name, _ in edited:
                    self.canary.file_edited(name, f"an edit of {_name(loaded)}")
        return None

    def _analysed_routes_edited(self, new: GatewayConfig) -> list[tuple[str, Route]]:
        """Routes whose analysis is running and whose variants the new config changes."""
        old = self.table.loaded.config
        out = []
        for name, route in old.routes.items():
            after = new.routes.get(name)
            if after is not None and after.variants != route.variants and self._analysing(name):
                out.append((name, after))
        return out

    def _analysing(self, route: str) -> bool:
        if self.canary is not None:
            return self.canary.holds_weights(route)
        # A worker process has no analysis of its own: it reads the primary's persisted status,
        # so that every process refuses (or applies) the same edit.
        return StatusStore(self.settings.canary_status_path()).get(route).phase == "analysing"

    def file_state(self) -> FileState:
        path = self.table.loaded.path
        if path is None:
            return FileState(None, True)
        try:
            version = version_of(path.read_bytes())
        except OSError as exc:
            return FileState(None, False, f"cannot read {path.name}: {exc.strerror}")
        if version == self.table.loaded.version:
            return FileState(version, True)
        if self.rejected is not None and self.rejected[0] == version:
            return FileState(version, False, self.rejected[1])
        return FileState(version, False, "changed on disk, not read yet")

    async def start(self) -> None:
        path = self.table.loaded.path
        if path is not None:
            watcher = ConfigWatcher(path, self.settings.reload_interval_s, self)
            self._tasks.append(asyncio.create_task(watcher.run(), name="config-watcher"))
        self._tasks.append(asyncio.create_task(self._readiness_loop(), name="readiness"))
        if self.primary:
            self._tasks.append(asyncio.create_task(self._scrape_loop(), name="backend-scraper"))
            self._tasks.append(asyncio.create_task(self._stats_loop(), name="status-stats"))

    async def stop_background(self) -> None:
        """Stop watching the file, probing and scraping (at once when draining: the table
        stays as it is for the requests still in flight)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def aclose(self) -> None:
        await self.stop_background()
        await self.shadow.drain()
        await self.client.aclose()
        await self.grpc_client.aclose()

    async def _stats_loop(self) -> None:
        while True:
            self.stats.record()
            await asyncio.sleep(1.0)

    async def _readiness_loop(self) -> None:
        while True:
            table = self.table
            await self.readiness.refresh(table.backends, table.loaded.config)
            await asyncio.sleep(self.settings.scrape_interval_s)

    async def _scrape_loop(self) -> None:
        while True:
            for name, backend in self.table.backends.items():
                self.scraped.update(name, await backend.scrape())
            await asyncio.sleep(self.settings.scrape_interval_s)


def _name(loaded: LoadedConfig) -> str:
    return loaded.path.name if loaded.path is not None else "the config file"


def _still_on_disk(loaded: LoadedConfig) -> bool:
    if loaded.path is None:
        return True
    try:
        return version_of(loaded.path.read_bytes()) == loaded.version
    except OSError:
        return False


def _policy(route: Route) -> str:
    return route.analysis.on_file_edit if route.analysis is not None else "pause"


def _audit_file_edit(path: Path, old: LoadedConfig, new: LoadedConfig) -> None:
    """One audit entry per route the edit changed (one for the file when only backends did)."""
    names = sorted(set(old.config.routes) | set(new.config.routes))
    changed = [n for n in names if old.config.routes.get(n) != new.config.routes.get(n)]
    for name in changed or [""]:
        before, after = old.config.routes.get(name), new.config.routes.get(name)
        audit.append(
            path,
            audit.AuditEntry(
                who="file",
                client="",
                action="file_edit",
                route=name,
                old={v.name: v.weight for v in before.variants} if before else {},
                new={v.name: v.weight for v in after.variants} if after else {},
                version_before=old.version,
                version_after=new.version,
                reason=f"{_name(new)} edited on disk",
            ),
        )
