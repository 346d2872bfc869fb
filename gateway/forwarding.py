"""One client request's upstream attempts: the first, and at most one retry.

A request whose worker died under it, or whose connection never opened, is retried once under
a budget (``gateway.retries``); each attempt is measured against the variant it went to (its
requests, latency, upstream errors and outlier ejection are that variant's). A request
abandoned by its client (cancelled task) is counted with code 499. On a route that coalesces,
an attempt may travel joined with other clients' (``gateway.coalesce``): it is still measured,
retried and ejected as this client's own.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from gateway import retries
from gateway.backends import BackendResponse, Payload
from gateway.cancel import client_left, new_request_id
from gateway.coalesce import Target
from gateway.config import Route, Variant
from gateway.errors import UpstreamError
from gateway.metrics import ProtocolName
from gateway.state import Gateway, Table

CLIENT_CLOSED = 499  # nginx's "client closed request"


@dataclass(frozen=True)
class Forwarding:
    gw: Gateway
    table: Table
    route_name: str
    route: Route
    payload: Payload
    protocol: ProtocolName
    deadline: float  # perf_counter time by which the answer is due
    pinned: bool  # the client chose the variant (pin header or version): retry on it only

    async def serve(self, variant: Variant) -> tuple[Variant, BackendResponse]:
        """Retried once when the first attempt died with its worker or never reached the
        upstream, and the retry budget allows (``gateway.retries``)."""
        try:
            response = await self.attempt(variant)
            reason = retries.retry_reason(response)
        except UpstreamError as exc:
            if not exc.before_sent or not self._may_retry(variant, "connect_failure"):
                raise
            reason = "connect_failure"
        else:
            if reason is None or not self._may_retry(variant, reason):
                return variant, response
        try:
            # A client's pin (variant or version) holds for the retry too: never another variant.
            target = (
                variant
                if self.pinned
                else retries.retry_target(
                    self.route, variant, self.gw.outliers.ejected(self.route_name)
                )
            )
            if target.name == variant.name:
                await asyncio.sleep(retries.backoff_s())
            return target, await self.attempt(target)
        finally:
            self.gw.retry_budget.release()

    def _may_retry(self, variant: Variant, reason: str) -> bool:
        labels = (self.route_name, variant.name)
        if not self.gw.retry_budget.acquire():
            self.gw.metrics.retries.labels(*labels, "budget_exhausted").inc()
            return False
        self.gw.metrics.retries.labels(*labels, reason).inc()
        return True

    async def attempt(self, variant: Variant) -> BackendResponse:
        """One upstream attempt, measured against ``variant`` (each attempt is a request to
        the variant it went to: its failures are that variant's, counted and ejected)."""
        gw, route_name, protocol = self.gw, self.route_name, self.protocol
        m = gw.metrics
        labels = (route_name, variant.name)
        m.in_flight.labels(*labels).inc()
        started = time.perf_counter()
        try:
            response = await self._upstream(variant)
        except UpstreamError as exc:
            gw.outliers.record(route_name, self.route, variant.name, ok=False)
            m.upstream_errors.labels(*labels, protocol, exc.metric_kind).inc()
            if exc.metric_kind == "auth_rejected":
                m.auth_rejections.labels(variant.backend).inc()
            exc.variant = variant.name
            observe(gw, labels, protocol, exc.status, time.perf_counter() - started)
            raise
        except asyncio.CancelledError:  # the client went away; the upstream call is abandoned
            observe(gw, labels, protocol, CLIENT_CLOSED, time.perf_counter() - started)
            raise
        finally:
            m.in_flight.labels(*labels).dec()
        observe(gw, labels, protocol, response.status, time.perf_counter() - started)
        gw.outliers.record(route_name, self.route, variant.name, ok=response.status < 500)
        return response

    async def _upstream(self, variant: Variant) -> BackendResponse:
        """The backend's answer to this request, joined with others' where the route coalesces."""
        backend = self.table.backends[variant.backend]
        policy = self.route.coalesce
        if policy is not None:
            target = Target(self.route_name, variant, backend)
            return await self.gw.coalescer.predict(target, policy, self.payload, self.deadline)
        timeout_s = max(self.deadline - time.perf_counter(), 0.001)
        cancel_dir = self.gw.settings.cancel_dir
        if cancel_dir is None:
            return await backend.predict(variant, self.payload, timeout_s)
        # As for a stream (gateway.relay): a unary generation whose client leaves is stopped.
        request_id = new_request_id()
        try:
            return await backend.predict(variant, self.payload, timeout_s, request_id)
        except asyncio.CancelledError:
            client_left(cancel_dir, request_id)
            raise


def observe(
    gw: Gateway, labels: tuple[str, str], protocol: ProtocolName, status: int, latency_s: float
) -> None:
    gw.metrics.requests.labels(*labels, protocol, str(status)).inc()
    gw.metrics.latency.labels(*labels, protocol).observe(latency_s)
