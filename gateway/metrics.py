"""The gateway's Prometheus series, in a registry of its own.

Label values come only from config (route, variant, backend names) or from fixed sets (status
codes the gateway produces, error kinds, reload results). A request for an unknown model is
counted under route ``_unknown``; one that fails before a variant is chosen under ``_none``.
Per-request series carry ``protocol`` (``rest`` or ``grpc``): one series set for both.

A gateway with several worker processes runs prometheus_client in multi-process mode
(``PROMETHEUS_MULTIPROC_DIR``): every process writes its series to files there and ``/metrics``
sums them (``exposition``). Series derived from state rather than events (weights, config
version, canary phase) are computed at scrape time by collectors, never stored, so none lingers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from gateway.config import GatewayConfig, LoadedConfig

UNKNOWN_ROUTE = "_unknown"
NO_VARIANT = "_none"
# Fine enough that a p99 read from buckets (canary analysis, histogram_quantile) lands within
# ~25% of the true value between 1 ms and 1 s.
LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
# Cosine and top-1 agreement live near 1, max abs difference near 0: one bucket set for both.
DIVERGENCE_BUCKETS = (
    0.0,
    1e-6,
    1e-5,
    1e-4,
    1e-3,
    0.01,
    0.1,
    0.5,
    0.9,
    0.99,
    0.999,
    0.9999,
    0.99999,
    1.0,
)
# Tokens per second of one stream: from a CPU test model's few to a GPU's thousands.
TOKEN_RATE_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)
# Items per upstream request of a coalescing route, up to the largest max_items allowed.
COALESCE_ITEMS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# A coalesced item's wait is bounded by max_wait_ms (1000 at most), usually a few ms.
COALESCE_WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
# A finished run is history, not a phase (gateway/canary/status.py): how runs ended is counted in
# servegate_canary_decisions_total{decision="promote"|"rollback"|"abort"}.
CANARY_PHASES = ("idle", "analysing", "paused")
CANARY_DECISIONS = ("advance", "hold", "fail", "promote", "rollback", "abort")
RV = ("route", "variant")
RVP = (*RV, "protocol")
ProtocolName = Literal["rest", "grpc"]
T = TypeVar("T")


class _CachedChildren:
    """``labels(*values)`` from a dict: the labelled child per label tuple is made once.

    prometheus_client validates and locks on every ``labels()`` call (~2 us, four of them per
    request); label values here come from config, so the cache stays as small as the series
    set. ``clear``/``remove`` drop the cached children with the series."""

    def labels(self: T, *values: object, **kwargs: object) -> T:
        cache: dict[tuple[object, ...], T] = self.__dict__.setdefault("_children", {})
        if kwargs:
            return super().labels(*values, **kwargs)  # type: ignore[misc,no-any-return]
        child = cache.get(values)
        if child is None:
            child = cache[values] = super().labels(*values)  # type: ignore[misc]
        return child

    def clear(self) -> None:
        self.__dict__.pop("_children", None)
        super().clear()  # type: ignore[misc]

    def remove(self, *values: object) -> None:
        self.__dict__.pop("_children", None)
        super().remove(*values)  # type: ignore[misc]


class _Counter(_CachedChildren, Counter):
    pass


class _Gauge(_CachedChildren, Gauge):
    pass


class _Histogram(_CachedChildren, Histogram):
    pass


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = _Counter(
            "servegate_requests",
            "Requests by route, variant, protocol and status code",
            [*RVP, "code"],
            registry=r,
        )
        self.latency = _Histogram(
            "servegate_request_duration_seconds",
            "Gateway request latency",
            RVP,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # Streams (gateway/relay.py): counted in requests/latency as any request, and these.
        self.first_token = _Histogram(
            "servegate_stream_first_token_seconds",
            "Time from forwarding a streamed request to its first token",
            RVP,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = _Counter(
            "servegate_stream_tokens",
            "Tokens generated in streamed answers (the answer's details.generated_tokens, "
            "else the pieces streamed)",
            RVP,
            registry=r,
        )
        self.tokens_per_second = _Histogram(
            "servegate_stream_tokens_per_second",
            "Tokens per second of one streamed answer after its first token",
            RVP,
            buckets=TOKEN_RATE_BUCKETS,
            registry=r,
        )
        self.upstream_errors = _Counter(
            "servegate_upstream_errors",
            "Backend failures by kind",
            [*RVP, "kind"],
            registry=r,
        )
        self.in_flight = _Gauge(
            "servegate_in_flight_requests",
            "Requests in progress",
            RV,
            registry=r,
            multiprocess_mode="livesum",
        )
        self.retries = _Counter(
            "servegate_upstream_retries",
            "Retried upstream attempts by the variant that failed and why (worker_died, "
            "connect_failure; budget_exhausted: a retry the budget refused)",
            [*RV, "reason"],
            registry=r,
        )
        self._coalescing(r)
        self.http_refusals = Counter(
            "servegate_http_refusals",
            "Connections refused before a request reached the app (header_timeout, "
            "headers_too_large, connection_limit)",
            ["reason"],
            registry=r,
        )
        self.shadow_requests = Counter(
            "servegate_shadow_requests", "Requests copied to a shadow variant", RV, registry=r
        )
        self.shadow_failures = Counter(
            "servegate_shadow_failures",
            "Shadow requests that failed (never surfaced)",
            [*RV, "kind"],
            registry=r,
        )
        self.reloads = Counter(
            "servegate_config_reloads",
            "Config reloads by result (applied, rejected)",
            ["result"],
            registry=r,
        )
        self.auth_rejections = Counter(
            "servegate_backend_auth_rejections",
            "Times a backend refused the gateway's own key (answered 503)",
            ["backend"],
            registry=r,
        )
        self.key_renewals = Counter(
            "servegate_backend_key_renewals",
            "Inference keys renewed after a rejection (reread, renewed, failed)",
            ["backend", "result"],
            registry=r,
        )
        self.divergence = Histogram(
            "servegate_canary_divergence",
            "Shadow answer vs served answer to the same request (cosine, max_abs, top1 or tokens)",
            [*RV, "measure"],
            buckets=DIVERGENCE_BUCKETS,
            registry=r,
        )
        self.divergence_mismatches = Counter(
            "servegate_canary_divergence_mismatches",
            "Shadow answers of another shape or kind than the served answer",
            RV,
            registry=r,
        )
        self.ejections = Counter(
            "servegate_outlier_ejections",
            "Variants taken out of rotation after consecutive upstream failures",
            RV,
            registry=r,
        )
        self.ejected = Gauge(
            "servegate_variant_ejected",
            "1 while a variant is out of rotation (in any worker process)",
            RV,
            registry=r,
            multiprocess_mode="livemax",
        )
        self.canary_decisions = Counter(
            "servegate_canary_decisions",
            "Analysis decisions (advance, hold, fail, promote, rollback, abort)",
            ["route", "decision"],
            registry=r,
        )
        self._extra: list[Collector] = []
        self._merged: CollectorRegistry | None = None

    def _coalescing(self, r: CollectorRegistry) -> None:
        """Coalescing's own series (``gateway/coalesce.py``); requests, latency and errors
        count client requests, as on every route."""
        self.coalesce_items = _Histogram(
            "servegate_coalesce_items",
            "Client requests (items) per upstream request on a coalescing route (1: sent alone)",
            RV,
            buckets=COALESCE_ITEMS_BUCKETS,
            registry=r,
        )
        self.coalesce_wait = _Histogram(
            "servegate_coalesce_wait_seconds",
            "Time a joinable request waited for its group to go upstream",
            RV,
            buckets=COALESCE_WAIT_BUCKETS,
            registry=r,
        )
        self.coalesce_passed = _Counter(
            "servegate_coalesce_passed",
            "Requests on a coalescing route sent alone at once (not_joinable: not one item of "
            "a form that joins; deadline: less time left than the wait)",
            [*RV, "reason"],
            registry=r,
        )
        self.coalesce_fallbacks = _Counter(
            "servegate_coalesce_fallbacks",
            "Joined requests whose items were then sent one by one (client_error: the joined "
            "request was answered 4xx; unsplittable: its answer could not be split)",
            [*RV, "reason"],
            registry=r,
        )

    def apply_config(self, config: GatewayConfig) -> None:
        for route_name, route in config.routes.items():
            if route.shadow is not None and route.shadow.compare is not None:
                # Present at 0 from the start: "no mismatch yet" is a real zero, and rate()
                # sees the first one.
                self.divergence_mismatches.labels(route_name, route.shadow.variant)
            if route.analysis is not None:
                # Present at 0 too: increase() sees the first rollback (the alert's trigger).
                for decision in CANARY_DECISIONS:
                    self.canary_decisions.labels(route_name, decision)

    def add_collector(self, collector: Collector) -> None:
        """A collector computed at scrape time in this process (config, canary, backends)."""
        self._extra.append(collector)
        self.registry.register(collector)

    @property
    def multiprocess(self) -> bool:
        return multiprocess_dir() is not None

    def families(self) -> Iterable[Metric]:
        """The request series of every worker process (for windows over them)."""
        if self.multiprocess:
            return MultiProcessCollector(None).collect()  # type: ignore[no-untyped-call,no-any-return]
        own = (self.requests, self.latency, self.divergence, self.divergence_mismatches)
        return (family for metric in own for family in metric.collect())

    def exposition(self) -> CollectorRegistry:
        """What ``/metrics`` serves: in a multi-process gateway the series of every worker
        (``MultiProcessCollector``) plus this process's scrape-time collectors."""
        if not self.multiprocess:
            return self.registry
        if self._merged is None:
            self._merged = CollectorRegistry()
            MultiProcessCollector(self._merged)  # type: ignore[no-untyped-call]
            for collector in self._extra:
                self._merged.register(collector)
        return self._merged


class TableCollector(Collector):
    """Weights and config version from the routing table serving now, computed at scrape time
    (so a removed route or an old version never lingers, in one process or many)."""

    def __init__(self, loaded: Callable[[], LoadedConfig]) -> None:
        self.loaded = loaded

    def collect(self) -> Iterator[Metric]:
        loaded = self.loaded()
        weights = GaugeMetricFamily(
            "servegate_route_weight", "Current variant weight (percent)", labels=RV
        )
        for route_name, route in loaded.config.routes.items():
            for v in route.variants:
                weights.add_metric([route_name, v.name], v.weight)
        yield weights
        info = GaugeMetricFamily(
            "servegate_config_version_info", "The config version serving now", labels=["version"]
        )
        info.add_metric([loaded.version], 1)
        yield info


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when prometheus_client really runs in multi-process mode."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return path if path and values.ValueClass is not values.MutexValue else None
