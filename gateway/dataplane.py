"""The protocol-neutral core of the data plane: route, forward, shadow, measure.

Protocol layers (``rest/predictions.py``, ``rest/oip.py``; gRPC later) read the request, build
``RequestFacts`` and call ``infer``; they only translate bodies and errors into their shapes.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from gateway.backends import BackendResponse, Payload
from gateway.config import Route, Variant
from gateway.errors import GatewayError, ModelNotFound, UpstreamError
from gateway.metrics import NO_VARIANT, UNKNOWN_ROUTE
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
) -> Outcome:
    """Serve one inference on ``table`` (the one the request started with)."""
    route = lookup(table, route_name)
    variant = choose(route_name, route, facts)
    if route.shadow is not None and random.random() * 100 < route.shadow.percent:
        shadow = route.variant(route.shadow.variant)
        if shadow is not None and shadow.name != variant.name:
            gw.shadow.send(route=route_name, variant=shadow, backend=table.backends[shadow.backend],
                           payload=payload, timeout_s=route.timeout_s)  # fmt: skip
    m = gw.metrics
    labels = (route_name, variant.name)
    m.in_flight.labels(*labels).inc()
    started = time.perf_counter()
    try:
        backend = table.backends[variant.backend]
        response = await backend.predict(variant, payload, route.timeout_s)
    except UpstreamError as exc:
        m.upstream_errors.labels(*labels, exc.metric_kind).inc()
        if exc.metric_kind == "auth_rejected":
            m.auth_rejections.labels(variant.backend).inc()
        exc.variant = variant.name
        observe(gw, route_name, variant.name, exc.status, time.perf_counter() - started)
        raise
    finally:
        m.in_flight.labels(*labels).dec()
    observe(gw, route_name, variant.name, response.status, time.perf_counter() - started)
    return Outcome(route_name, variant, response)


def observe(gw: Gateway, route: str, variant: str, status: int, latency_s: float) -> None:
    gw.metrics.requests.labels(route, variant, str(status)).inc()
    gw.metrics.latency.labels(route, variant).observe(latency_s)
    gw.stats.observe(route, variant, latency_s, status >= 500)


def count_refusal(gw: Gateway, table: Table, model: str, exc: GatewayError) -> None:
    """Count a request refused before reaching a backend, with config-only label values."""
    route = model if model in table.loaded.config.routes else UNKNOWN_ROUTE
    gw.metrics.requests.labels(route, exc.variant or NO_VARIANT, str(exc.status)).inc()
