"""The protocol-neutral core of the data plane: route, forward, shadow, measure.

Protocol layers (``rest/predictions.py``, ``rest/oip.py``, ``grpc/``) read the request, build
``RequestFacts`` and call ``infer``; they only translate bodies and errors into their shapes.
A request abandoned by its client (cancelled task) is counted with code 499. A request whose
worker died under it, or whose connection never opened, is retried once under a budget
(``gateway.retries``); each upstream attempt is measured against the variant it went to.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass

from gateway import retries
from gateway.backends import BackendResponse, Payload
from gateway.config import Route, Variant
from gateway.errors import BadRequest, GatewayError, ModelNotFound, UpstreamError
from gateway.metrics import NO_VARIANT, UNKNOWN_ROUTE, ProtocolName
from gateway.routing import RequestFacts, choose
from gateway.state import Gateway, Table


@dataclass(frozen=True)
class Outcome:
    route: str
    variant: Variant
    response: BackendResponse


def lookup(table: Table, model: str) -> Route:
    route = table.loaded.config.routes.get(model)
    if route is None:
        raise ModelNotFound(f"Model not found: {model}")
    return route


async def infer(
    gw: Gateway,
    table: Table,
    route_name: str,
    *,
    facts: RequestFacts,
    payload: Payload,
    protocol: ProtocolName = "rest",
    deadline_s: float | None = None,
) -> Outcome:
    """Serve one inference on ``table`` (the one the request started with); the upstream
    timeout is the route's, or the client's remaining ``deadline_s`` when that is shorter."""
    route = lookup(table, route_name)
    variant = choose(route_name, route, facts, ejected=gw.outliers.ejected(route_name))
    served: asyncio.Future[BackendResponse] | None = None
    if route.shadow is not None and random.random() * 100 < route.shadow.percent:
        shadow = route.variant(route.shadow.variant)
        if shadow is not None and shadow.name != variant.name:
            if route.shadow.compare is not None:
                served = asyncio.get_running_loop().create_future()
            gw.shadow.send(
                route=route_name,
                variant=shadow,
                backend=table.backends[shadow.backend],
                payload=payload,
                timeout_s=route.timeout_s,
                compare=route.shadow.compare,
                served=served,
            )
    timeout_s = route.timeout_s if deadline_s is None else min(route.timeout_s, deadline_s)
    deadline = time.perf_counter() + timeout_s
    pinned = facts.pinned_variant is not None or facts.version is not None
    call = _Call(gw, table, route_name, route, payload, protocol, deadline, pinned)
    gw.retry_budget.requests += 1
    gw.requests.started += 1
    try:
        variant, response = await call.serve(variant)
        if served is not None:
            served.set_result(response)
    except asyncio.CancelledError:
        gw.requests.abandoned += 1
        raise
    except BaseException:
        gw.requests.answered += 1  # an error answer
        raise
    else:
        gw.requests.answered += 1
    finally:
        gw.retry_budget.requests -= 1
        if served is not None and not served.done():
            served.cancel()  # no served answer: the shadow has nothing to compare with
    return Outcome(route_name, variant, response)


@dataclass(frozen=True)
class _Call:
    """One client request's upstream attempts: the first, and at most one retry."""

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
                return variant, _unavailable_if_killed(response)
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
            return target, _unavailable_if_killed(await self.attempt(target))
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
            backend = self.table.backends[variant.backend]
            timeout_s = max(self.deadline - started, 0.001)
            response = await backend.predict(variant, self.payload, timeout_s)
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


def _unavailable_if_killed(response: BackendResponse) -> BackendResponse:
    """TorchServe's 507 "Out of resources" for a worker killed under a request is no client's
    business: it is the model server being unavailable (503)."""
    if response.status != 507:
        return response
    body = {"code": 503, "type": "ServiceUnavailableException", "message": UNAVAILABLE}
    return BackendResponse(503, json.dumps(body).encode(), "application/json")


UNAVAILABLE = "the model server is unavailable"


CLIENT_CLOSED = 499  # nginx's "client closed request"


def observe(
    gw: Gateway, labels: tuple[str, str], protocol: ProtocolName, status: int, latency_s: float
) -> None:
    gw.metrics.requests.labels(*labels, protocol, str(status)).inc()
    gw.metrics.latency.labels(*labels, protocol).observe(latency_s)


def count_refusal(
    gw: Gateway, table: Table, model: str, exc: GatewayError, protocol: ProtocolName = "rest"
) -> None:
    """Count a request refused before reaching a backend, with config-only label values."""
    route = model if model in table.loaded.config.routes else UNKNOWN_ROUTE
    gw.metrics.requests.labels(route, exc.variant or NO_VARIANT, protocol, str(exc.status)).inc()


async def model_ready(gw: Gateway, table: Table, model: str, version: str | None) -> bool:
    """Ready when the backend of every variant that takes traffic (or of the asked version's
    variant) serves its model/version now: a variant its backend does not serve is not ready,
    whatever ``/ping`` says. ``ModelNotFound`` for an unknown model or version."""
    route, variant = resolve(table, model, version)
    serving = [variant] if version is not None else [v for v in route.variants if v.weight > 0]
    found = await gw.readiness.probe(table.backends, serving)
    return all(state.ready for state in found.values())


def resolve(table: Table, model: str, version: str | None) -> tuple[Route, Variant]:
    """The route and the variant that answers metadata/readiness for ``model[/version]``
    (the baseline without a version)."""
    route = lookup(table, model)
    if version is None:
        return route, route.variants[0]
    variant = next((v for v in route.variants if v.version == version), None)
    if variant is None:
        raise ModelNotFound(f"Model version not found: {model}/{version}")
    return route, variant


def check_input_names(table: Table, model: str, version: str | None, names: list[str]) -> None:
    """400 naming the expected inputs when an OIP request's input names are not the model's
    (as its metadata gives them: the baseline variant's, or the pinned version's). Without
    metadata (no model store configured, archive unreadable) the worker's own checks stand:
    the gateway's missing knowledge must not refuse the client."""
    _, variant = resolve(table, model, version)
    try:
        signature = table.backends[variant.backend].signature(variant)
    except UpstreamError:
        return
    expected = [t.name for t in signature.inputs]
    if sorted(names) != sorted(expected):
        raise BadRequest(f"{model} takes the input(s) {expected}, got {names}")
