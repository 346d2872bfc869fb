"""Rolling per-variant numbers for the status page: request rate, error rate, p50/p99.

Kept apart from Prometheus histograms because the page wants exact recent quantiles without a
Prometheus server. Each observation is one deque append; reads prune to the window.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

WINDOW_S = 10.0
MAX_SAMPLES = 20_000


@dataclass(frozen=True)
class Snapshot:
    rate: float  # requests per second over the window
    error_rate: float  # fraction of those answered >= 500
    p50_ms: float | None
    p99_ms: float | None
    total: int  # since start


class RollingStats:
    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: dict[tuple[str, str], deque[tuple[float, float, bool]]] = {}
        self._totals: dict[tuple[str, str], int] = {}

    def observe(self, route: str, variant: str, latency_s: float, error: bool) -> None:
        key = (route, variant)
        samples = self._samples.get(key)
        if samples is None:
            samples = self._samples[key] = deque(maxlen=MAX_SAMPLES)
        samples.append((time.monotonic(), latency_s, error))
        self._totals[key] = self._totals.get(key, 0) + 1

    def snapshot(self, route: str, variant: str) -> Snapshot:
        key = (route, variant)
        samples = self._samples.get(key, deque())
        horizon = time.monotonic() - self.window_s
        while samples and samples[0][0] < horizon:
            samples.popleft()
        total = self._totals.get(key, 0)
        if not samples:
            return Snapshot(0.0, 0.0, None, None, total)
        latencies = sorted(s[1] for s in samples)
        errors = sum(1 for s in samples if s[2])
        return Snapshot(
            rate=len(samples) / self.window_s,
            error_rate=errors / len(samples),
            p50_ms=_quantile(latencies, 0.50) * 1000,
            p99_ms=_quantile(latencies, 0.99) * 1000,
            total=total,
        )


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
