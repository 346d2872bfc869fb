"""Shadow traffic: a copy of a request sent to another variant, its answer discarded.

The sender decides which requests are mirrored (``mirror``: the route's ``shadow.percent``, never
to the variant that serves the request). A copy is sent as a detached task, so it never delays
or changes the client's answer. Failures are
counted (``servegate_shadow_failures_total``), never surfaced. At most ``MAX_PENDING`` copies
are in flight; beyond that a copy is dropped and counted as a failure of kind ``dropped``.

With ``compare`` set, the shadow's answer is compared with the answer the client got (the
``served`` future, resolved by the data plane) and the divergence observed per route.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping

from gateway.backends import Backend, BackendResponse, Payload
from gateway.canary.divergence import Mismatch, divergence
from gateway.config import CompareMeasure, Route, Variant
from gateway.errors import UpstreamError
from gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)
MAX_PENDING = 256


class ShadowSender:
    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics
        self._pending: set[asyncio.Task[None]] = set()

    def mirror(
        self,
        route_name: str,
        route: Route,
        served_by: Variant,
        backends: Mapping[str, Backend],
        payload: Payload,
    ) -> asyncio.Future[BackendResponse] | None:
        """Send a copy of this request to the route's shadow variant when it is sampled (one
        draw against ``shadow.percent``) and is not ``served_by``. With ``compare`` set, the
        future returned is for the caller to resolve with the served answer (or cancel)."""
        policy = route.shadow
        if policy is None or random.random() * 100 >= policy.percent:
            return None
        variant = route.variant(policy.variant)
        if variant is None or variant.name == served_by.name:
            return None
        served: asyncio.Future[BackendResponse] | None = None
        if policy.compare is not None:
            served = asyncio.get_running_loop().create_future()
        self.send(
            route=route_name,
            variant=variant,
            backend=backends[variant.backend],
            payload=payload,
            timeout_s=route.timeout_s,
            compare=policy.compare,
            served=served,
        )
        return served

    def send(
        self,
        *,
        route: str,
        variant: Variant,
        backend: Backend,
        payload: Payload,
        timeout_s: float,
        compare: CompareMeasure | None = None,
        served: asyncio.Future[BackendResponse] | None = None,
    ) -> None:
        self.metrics.shadow_requests.labels(route, variant.name).inc()
        if len(self._pending) >= MAX_PENDING:
            self.metrics.shadow_failures.labels(route, variant.name, "dropped").inc()
            return
        task = asyncio.create_task(
            self._run(
                route=route,
                variant=variant,
                backend=backend,
                payload=payload,
                timeout_s=timeout_s,
                compare=compare,
                served=served,
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
        compare: CompareMeasure | None,
        served: asyncio.Future[BackendResponse] | None,
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
            return
        if compare is not None and served is not None:
            await self._compare(
                route, variant.name, compare, served=served, shadow=resp, timeout_s=timeout_s
            )

    async def _compare(
        self,
        route: str,
        variant: str,
        measure: CompareMeasure,
        *,
        served: asyncio.Future[BackendResponse],
        shadow: BackendResponse,
        timeout_s: float,
    ) -> None:
        try:
            answer = await asyncio.wait_for(asyncio.shield(served), timeout_s)
        except TimeoutError:
            return
        except asyncio.CancelledError:
            if served.cancelled():
                return  # the client's request failed or was abandoned: nothing to compare
            raise
        if answer.status != 200:
            return
        try:
            value = divergence(answer.body, shadow.body, measure)
        except Mismatch as exc:
            log.warning(
                "%s/%s answers differ in shape from the served answer: %s", route, variant, exc
            )
            self.metrics.divergence_mismatches.labels(route, variant).inc()
            return
        if value is not None:
            self.metrics.divergence.labels(route, variant, measure).observe(value)

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
