"""The data plane: a request from route lookup to outcome, the same for every protocol.

As KServe's ``DataPlane`` under its REST and gRPC layers, ``DataPlane`` is all the protocol
layers (``rest/predictions.py``, ``rest/oip.py``, ``grpc/torchserve.py``, ``grpc/oip.py``) call;
they only parse requests and render answers and errors.

- inference: ``with dataplane.inference(model, protocol) as call`` looks the route up (404) on
  the table the request starts with, which it keeps to the end; ``call.facts`` reads the sticky
  key and pin, ``call.infer`` chooses the variant (``routing.choose``), mirrors to the shadow
  (``ShadowSender.mirror``) and forwards with retries and per-attempt metrics
  (``gateway.forwarding``); ``call.stream`` does the same for an answer that comes in pieces
  (``gateway.relay``: relayed as they arrive, never retried). A ``GatewayError`` raised in
  the block before a variant was chosen is counted once on the way out, as a refusal with
  config-only label values;
- readiness: ``ready`` (every backend, asked concurrently) and ``model_ready``;
- metadata: ``server_metadata`` and ``model_metadata``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType

from gateway.backends import BackendResponse, Payload, TensorSpec
from gateway.config import Route, Variant
from gateway.errors import BadRequest, GatewayError, ModelNotFound, UpstreamError
from gateway.forwarding import Forwarding
from gateway.metrics import NO_VARIANT, UNKNOWN_ROUTE, ProtocolName
from gateway.relay import Relay, Stream
from gateway.routing import RequestFacts, choose, facts_from
from gateway.settings import GatewaySettings
from gateway.state import Gateway, Table

PLATFORM = "servegate_torchserve"
UNAVAILABLE = "the model server is unavailable"


@dataclass(frozen=True)
class Outcome:
    route: str
    variant: Variant
    response: BackendResponse


@dataclass(frozen=True)
class ServerMetadata:
    name: str = "servegate"
    version: str = "0.1.0"
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    versions: list[str]  # of every variant of the route, sorted
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


class DataPlane:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.settings: GatewaySettings = gw.settings  # the process's: never replaced

    def inference(self, model: str, protocol: ProtocolName) -> Inference:
        return Inference(self.gw, model, protocol)

    async def ready(self) -> bool:
        """Whether every backend answers its health check now (asked concurrently)."""
        backends = self.gw.table.backends.values()
        return all(await asyncio.gather(*(b.ready() for b in backends)))

    async def model_ready(self, model: str, version: str | None) -> bool:
        """Ready when the backend of every variant that takes traffic (or of the asked version's
        variant) serves its model/version now: a variant its backend does not serve is not
        ready, whatever ``/ping`` says. ``ModelNotFound`` for an unknown model or version."""
        table = self.gw.table
        route, variant = resolve(table, model, version)
        serving = [variant] if version is not None else [v for v in route.variants if v.weight > 0]
        found = await self.gw.readiness.probe(table.backends, serving)
        return all(state.ready for state in found.values())

    def server_metadata(self) -> ServerMetadata:
        return SERVER

    def model_metadata(self, model: str, version: str | None) -> ModelMetadata:
        """``ModelNotFound`` for an unknown model or version, ``UpstreamError`` when the
        signature cannot be read."""
        table = self.gw.table
        route, variant = resolve(table, model, version)
        sig = table.backends[variant.backend].signature(variant)
        versions = sorted({v.version for v in route.variants})
        return ModelMetadata(model, versions, PLATFORM, sig.inputs, sig.outputs)


# binary_tensor_data: Triton's name for the REST binary data extension (gateway.rest.binary).
SERVER = ServerMetadata(extensions=("binary_tensor_data",))


class Inference:
    """One inference request, on the table it started with. Entering looks the route up
    (``ModelNotFound``); a ``GatewayError`` that leaves the block before a variant was chosen
    (``variant`` unset) is counted as a refusal."""

    __slots__ = ("gw", "model", "protocol", "route", "table")

    def __init__(self, gw: Gateway, model: str, protocol: ProtocolName) -> None:
        self.gw = gw
        self.table = gw.table
        self.model = model
        self.protocol = protocol

    def __enter__(self) -> Inference:
        route = self.table.loaded.config.routes.get(self.model)
        if route is None:
            exc = ModelNotFound(f"Model not found: {self.model}")
            self._refused(UNKNOWN_ROUTE, exc)
            raise exc
        self.route: Route = route
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, GatewayError) and exc.variant is None:
            self._refused(self.model, exc)

    def _refused(self, route: str, exc: GatewayError) -> None:
        labels = (route, NO_VARIANT, self.protocol, str(exc.status))
        self.gw.metrics.requests.labels(*labels).inc()

    def facts(
        self,
        headers: Mapping[str, str],
        cookies: Callable[[], Mapping[str, str]],
        version: str | None,
    ) -> RequestFacts:
        """The route's sticky key and pin from headers (or gRPC metadata); ``cookies`` is
        called only when the route's sticky key is a cookie."""
        sticky = self.route.sticky
        jar = cookies() if sticky is not None and sticky.cookie is not None else {}
        return facts_from(self.route, headers, jar, version)

    def check_input_names(self, version: str | None, names: list[str]) -> None:
        """400 naming the expected inputs when an OIP request's input names are not the
        model's (as its metadata gives them: the baseline variant's, or the pinned version's).
        Without metadata (no model store configured, archive unreadable) the worker's own
        checks stand: the gateway's missing knowledge must not refuse the client."""
        _, variant = resolve(self.table, self.model, version)
        try:
            signature = self.table.backends[variant.backend].signature(variant)
        except UpstreamError:
            return
        expected = [t.name for t in signature.inputs]
        if sorted(names) != sorted(expected):
            raise BadRequest(f"{self.model} takes the input(s) {expected}, got {names}")

    async def infer(
        self, payload: Payload, facts: RequestFacts, deadline_s: float | None = None
    ) -> Outcome:
        """Choose the variant, mirror to the shadow, forward; the upstream timeout is the
        route's, or the client's remaining ``deadline_s`` when that is shorter."""
        gw, route, name = self.gw, self.route, self.model
        variant = choose(name, route, facts, ejected=gw.outliers.ejected(name))
        served = None
        if route.shadow is not None:  # the sender samples and sends, or not
            served = gw.shadow.mirror(name, route, variant, self.table.backends, payload)
        timeout_s = route.timeout_s if deadline_s is None else min(route.timeout_s, deadline_s)
        deadline = time.perf_counter() + timeout_s
        pinned = facts.pinned_variant is not None or facts.version is not None
        call = Forwarding(gw, self.table, name, route, payload, self.protocol, deadline, pinned)
        gw.retry_budget.requests += 1
        gw.requests.started += 1
        try:
            variant, response = await call.serve(variant)
            response = _unavailable_if_killed(response)
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
        return Outcome(name, variant, response)

    @asynccontextmanager
    async def stream(
        self, payload: Payload, facts: RequestFacts, deadline_s: float | None = None
    ) -> AsyncIterator[Stream]:
        """As ``infer``, for an answer relayed piece by piece while the block iterates
        ``Stream.pieces``; the variant is chosen as for ``infer``. Each piece is due within
        the route's timeout (or the client's remaining ``deadline_s``) of the one before.
        Leaving the block before the answer arrived is the client leaving: the worker is told
        (``gateway.relay``)."""
        gw, route, name = self.gw, self.route, self.model
        variant = choose(name, route, facts, ejected=gw.outliers.ejected(name))
        served = None
        if route.shadow is not None:
            # Streams travel over HTTP, their copies too: a streaming request sent to
            # TorchServe's unary gRPC Predictions (where ``inputs`` would take it) has no
            # channel for its intermediate responses.
            copy = Payload(payload.body, payload.content_type)
            served = gw.shadow.mirror(name, route, variant, self.table.backends, copy)
        timeout_s = route.timeout_s if deadline_s is None else min(route.timeout_s, deadline_s)
        relay = Relay(gw, self.table, name, route, variant=variant, protocol=self.protocol)
        gw.requests.started += 1
        try:
            async with relay.open(payload, timeout_s) as stream:
                yield stream
        except asyncio.CancelledError:
            gw.requests.abandoned += 1
            raise
        except BaseException:
            gw.requests.answered += 1
            raise
        else:
            gw.requests.answered += 1
        finally:
            if served is not None and not served.done():
                if relay.answer is None:
                    served.cancel()
                else:
                    served.set_result(BackendResponse(200, relay.answer, "application/json"))


def resolve(table: Table, model: str, version: str | None) -> tuple[Route, Variant]:
    """The route and the variant that answers metadata/readiness for ``model[/version]``
    (the baseline without a version)."""
    route = table.loaded.config.routes.get(model)
    if route is None:
        raise ModelNotFound(f"Model not found: {model}")
    if version is None:
        return route, route.variants[0]
    variant = next((v for v in route.variants if v.version == version), None)
    if variant is None:
        raise ModelNotFound(f"Model version not found: {model}/{version}")
    return route, variant


def _unavailable_if_killed(response: BackendResponse) -> BackendResponse:
    """TorchServe's 507 "Out of resources" for a worker killed under a request is no client's
    business: it is the model server being unavailable (503)."""
    if response.status != 507:
        return response
    body = {"code": 503, "type": "ServiceUnavailableException", "message": UNAVAILABLE}
    return BackendResponse(503, json.dumps(body).encode(), "application/json")
