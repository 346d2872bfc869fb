"""Per-variant numbers for the status page over the last ``WINDOW_S``: request rate, error rate,
p50/p99 latency (from the latency histogram's buckets) and the total since start.

``record`` keeps one snapshot of the gateway's series per second (``gateway.windows``), so the
page shows every worker process's traffic and costs the request path nothing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import Metric

from gateway.windows import Counts, NoData, Snapshot, take_snapshot

WINDOW_S = 10.0


@dataclass(frozen=True)
class VariantStats:
    rate: float  # requests per second over the window
    error_rate: float  # fraction of those answered >= 500
    p50_ms: float | None
    p99_ms: float | None
    total: int  # since start


class WindowStats:
    def __init__(
        self,
        families: Callable[[], Iterable[Metric]],
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.families = families
        self.window_s = window_s
        self.clock = clock
        self._snapshots: deque[tuple[float, Snapshot]] = deque()

    def record(self) -> None:
        now = self.clock()
        self._snapshots.append((now, take_snapshot(self.families())))
        while len(self._snapshots) > 2 and self._snapshots[1][0] <= now - self.window_s:
            self._snapshots.popleft()

    def stats(self, route: str, variant: str) -> VariantStats:
        if not self._snapshots:
            return VariantStats(0.0, 0.0, None, None, 0)
        (then_t, then), (now_t, now) = self._snapshots[0], self._snapshots[-1]
        latest = now.get((route, variant), Counts())
        window = latest.minus(then.get((route, variant), Counts()))
        span = max(now_t - then_t, 1e-9)
        if window.requests <= 0:
            return VariantStats(0.0, 0.0, None, None, int(latest.requests))
        p50: float | None
        p99: float | None
        try:
            p50, p99 = window.quantile_ms(0.50), window.quantile_ms(0.99)
        except NoData:
            p50 = p99 = None
        return VariantStats(
            rate=window.requests / span,
            error_rate=window.errors / window.requests,
            p50_ms=p50,
            p99_ms=p99,
            total=int(latest.requests),
        )
