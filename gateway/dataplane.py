"""The protocol-neutral core of the data plane: route, forward, shadow, measure.

Protocol layers (``rest/predictions.py``, ``rest/oip.py``, ``grpc/``) read the request, build
``RequestFacts`` and call ``infer``; they only translate bodies and errors into their shapes.
A request abandoned by its client (cancelled task) is counted with code 499.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

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
    m = gw.metrics
    labels = (route_name, variant.name)
    timeout_s = route.timeout_s if deadline_s is None else min(route.timeout_s, deadline_s)
    m.in_flight.labels(*labels).inc()
    started = time.perf_counter()
    try:
        backend = table.backends[variant.backend]
        response = await backend.predict(variant, payload, timeout_s)
        if served is not None:
            served.set_result(response)
    except UpstreamError as exc:
        gw.outliers.record(route_name, route, variant.name, ok=False)
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
        if served is not None and not served.done():
            served.cancel()  # no served answer: the shadow has nothing to compare with
    observe(gw, labels, protocol, response.status, time.perf_counter() - started)
    gw.outliers.record(route_name, route, variant.name, ok=response.status < 500)
    return Outcome(route_name, variant, response)


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
