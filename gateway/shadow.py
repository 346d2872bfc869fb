"""Shadow traffic: a copy of a request sent to another variant, its answer discarded.

Sent as a detached task, so it never delays or changes the client's answer. Failures are
counted (``servegate_shadow_failures_total``), never surfaced. At most ``MAX_PENDING`` copies
are in flight; beyond that a copy is dropped and counted as a failure of kind ``dropped``.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.backends import Backend, Payload
from gateway.config import Variant
from gateway.errors import UpstreamError
from gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)
MAX_PENDING = 256


class ShadowSender:
    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics
        self._pending: set[asyncio.Task[None]] = set()

    def send(
        self,
        *,
        route: str,
        variant: Variant,
        backend: Backend,
        payload: Payload,
        timeout_s: float,
    ) -> None:
        self.metrics.shadow_requests.labels(route, variant.name).inc()
        if len(self._pending) >= MAX_PENDING:
            self.metrics.shadow_failures.labels(route, variant.name, "dropped").inc()
            return
        task = asyncio.create_task(
            self._run(
                route=route, variant=variant, backend=backend, payload=payload, timeout_s=timeout_s
            )
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _run(
        self,
        *,
        route: str,
        variant: Variant,
        backend: Backend,
        payload: Payload,
        timeout_s: float,
    ) -> None:
        try:
            resp = await backend.predict(variant, payload, timeout_s)
        except UpstreamError as exc:
            self.metrics.shadow_failures.labels(route, variant.name, exc.metric_kind).inc()
            return
        except Exception:  # a shadow must never take the gateway down
            log.exception("shadow request to %s/%s failed", route, variant.name)
            self.metrics.shadow_failures.labels(route, variant.name, "internal").inc()
            return
        if resp.status >= 400:
            kind = f"http_{resp.status // 100}xx"
            self.metrics.shadow_failures.labels(route, variant.name, kind).inc()

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
