"""Outlier ejection: a variant whose upstream fails ``consecutive_failures`` times in a row
(connection refused or reset, timeout, 5xx) leaves the rotation for ``backoff_s``; routing
gives its share to the others, and after the back-off it is readmitted with a clean count.

The last variant still in rotation (weight above 0, not ejected) is never ejected: with nothing
healthy left, answering from the least-bad variant beats refusing everyone. State lives in this
process only, like Envoy's outlier detection: every replica judges what it sees.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from gateway.config import Route
from gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (route, variant)


class OutlierDetector:
    def __init__(
        self, metrics: GatewayMetrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self._failures: dict[Key, int] = {}
        self._until: dict[Key, float] = {}

    def ejected(self, route_name: str) -> frozenset[str]:
        """Variants of ``route_name`` out of rotation now."""
        if not self._until:
            return frozenset()
        self._expire()
        return frozenset(v for (r, v) in self._until if r == route_name)

    def record(self, route_name: str, route: Route, variant: str, ok: bool) -> None:
        policy = route.outlier_ejection
        if policy is None:
            return
        key = (route_name, variant)
        if ok:
            self._failures.pop(key, None)
            return
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        if count < policy.consecutive_failures or key in self._until:
            return
        in_rotation = [
            v.name
            for v in route.variants
            if v.weight > 0 and v.name != variant and v.name not in self.ejected(route_name)
        ]
        if not in_rotation:
            log.warning(
                "%s/%s failed %d times in a row but is the last variant in rotation: kept",
                route_name,
                variant,
                count,
            )
            return
        self._until[key] = self.clock() + policy.backoff_s
        self._failures.pop(key, None)
        # Readmit on time even when no request comes to notice (metrics, status page).
        asyncio.get_running_loop().call_later(policy.backoff_s + 0.01, self._expire)
        self.metrics.ejections.labels(*key).inc()
        self.metrics.ejected.labels(*key).set(1)
        log.warning(
            "%s/%s ejected for %.0f s after %d consecutive upstream failures",
            route_name,
            variant,
            policy.backoff_s,
            count,
        )

    def snapshot(self) -> dict[Key, float]:
        """Seconds left per ejected variant (status page)."""
        self._expire()
        now = self.clock()
        return {k: round(u - now, 1) for k, u in self._until.items()}

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, until in self._until.items() if until <= now]:
            del self._until[key]
            self._failures.pop(key, None)
            self.metrics.ejected.labels(*key).set(0)
            log.info("%s/%s readmitted after its back-off", *key)
