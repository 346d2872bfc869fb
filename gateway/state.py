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
from typing import Protocol

from gateway.backends import Backend, GrpcPool, HttpPool, make_backend
from gateway.config import LoadedConfig
from gateway.ejection import OutlierDetector
from gateway.metrics import GatewayMetrics, TableCollector
from gateway.reload import ConfigWatcher
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


class CanaryControl(Protocol):
    """What the admin API asks of the canary analysis (``gateway.canary.controller``)."""

    def holds_weights(self, route: str) -> bool: ...


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
        self.shadow = ShadowSender(self.metrics)
        self.outliers = OutlierDetector(self.metrics)
        self.retry_budget = RetryBudget()
        self.canary: CanaryControl | None = None  # set by the server when analysis is wired
        self.admin_lock = asyncio.Lock()
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

    def reloaded(self, loaded: LoadedConfig) -> None:
        self.apply(loaded)
        if self.primary:  # every process reloads the same file: count it once
            self.metrics.reloads.labels("applied").inc()

    def reject(self, reason: str) -> None:
        if self.primary:
            self.metrics.reloads.labels("rejected").inc()
        log.error("config change rejected, still serving %s: %s", self.table.loaded.version, reason)

    async def start(self) -> None:
        path = self.table.loaded.path
        if path is not None:
            watcher = ConfigWatcher(path, self.settings.reload_interval_s, self)
            self._tasks.append(asyncio.create_task(watcher.run(), name="config-watcher"))
        if self.primary:
            self._tasks.append(asyncio.create_task(self._scrape_loop(), name="backend-scraper"))
            self._tasks.append(asyncio.create_task(self._stats_loop(), name="status-stats"))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.shadow.drain()
        await self.client.aclose()
        await self.grpc_client.aclose()

    async def _stats_loop(self) -> None:
        while True:
            self.stats.record()
            await asyncio.sleep(1.0)

    async def _scrape_loop(self) -> None:
        while True:
            for name, backend in self.table.backends.items():
                self.scraped.update(name, await backend.scrape())
            await asyncio.sleep(self.settings.scrape_interval_s)
