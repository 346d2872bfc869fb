"""The gateway's Prometheus series, in a registry of its own.

Label values come only from config (route, variant, backend names) or from fixed sets (status
codes the gateway produces, error kinds, reload results). A request for an unknown model is
counted under route ``_unknown``; one that fails before a variant is chosen under ``_none``.
Per-request series carry ``protocol`` (``rest`` or ``grpc``): one series set for both.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.config import GatewayConfig

UNKNOWN_ROUTE = "_unknown"
NO_VARIANT = "_none"
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
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
        self.upstream_errors = _Counter(
            "servegate_upstream_errors",
            "Backend failures by kind",
            [*RVP, "kind"],
            registry=r,
        )
        self.in_flight = _Gauge(
            "servegate_in_flight_requests", "Requests in progress", RV, registry=r
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
        self.weights = Gauge(
            "servegate_route_weight", "Current variant weight (percent)", RV, registry=r
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
        self.config_info = Gauge(
            "servegate_config_version_info",
            "The config version serving now",
            ["version"],
            registry=r,
        )

    def apply_config(self, config: GatewayConfig, version: str) -> None:
        """Reset the per-config gauges to a new table (old routes disappear from them)."""
        self.weights.clear()
        for route_name, route in config.routes.items():
            for v in route.variants:
                self.weights.labels(route_name, v.name).set(v.weight)
        self.config_info.clear()
        self.config_info.labels(version).set(1)
