"""Where an analysis reads its numbers: this gateway's own metrics, or a Prometheus server.

Both answer the same questions about one variant of one route over the current interval:

    requests               requests answered (any status)
    error_rate             5xx and timeouts / requests (client 4xx are not errors)
    p99_ms                 99th percentile latency, from the latency histogram's buckets
    divergence             mean of the shadow comparison measure
    divergence_samples     how many comparisons that mean is over
    divergence_mismatches  shadow answers of another shape than the served answer

``GatewaySource`` (one replica) diffs the live counters against a snapshot taken when the
interval began. ``PromSource`` (several replicas) runs one PromQL query per question over the
interval's window; a query may be replaced per check in the config. Following Flagger, "no
data" (an empty result or NaN) raises ``NoData``: it is never read as a healthy zero.
"""

from __future__ import annotations

import math
import string
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import httpx
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.samples import Sample

from gateway.canary.spec import PrometheusSource
from gateway.metrics import GatewayMetrics

Question = Literal[
    "requests",
    "error_rate",
    "p99_ms",
    "divergence",
    "divergence_samples",
    "divergence_mismatches",
]


class NoData(Exception):
    """The source has no data for this question (yet): the interval cannot be judged."""


class SourceError(NoData):
    """The source failed (unreachable, bad query): also not judgeable, with the reason."""


class MetricSource(ABC):
    def begin(self, route: str) -> None:  # noqa: B027 - only in-process sources need it
        """A new interval starts for ``route`` now."""

    @abstractmethod
    async def value(
        self, question: Question, route: str, variant: str, query: str | None = None
    ) -> float:
        """The answer for the interval so far; ``NoData`` when there is none."""

    async def aclose(self) -> None:  # noqa: B027
        pass


@dataclass
class _Counts:
    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=lambda: defaultdict(float))
    div_sum: float = 0.0
    div_count: float = 0.0
    mismatches: float = 0.0


Snapshot = dict[tuple[str, str], _Counts]


class GatewaySource(MetricSource):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics
        self._start: dict[str, Snapshot] = {}

    def begin(self, route: str) -> None:
        self._start[route] = self._snapshot()

    async def value(
        self, question: Question, route: str, variant: str, query: str | None = None
    ) -> float:
        now = self._snapshot().get((route, variant), _Counts())
        then = self._start.get(route, {}).get((route, variant), _Counts())
        if question == "requests":
            return now.requests - then.requests
        if question == "divergence_samples":
            return now.div_count - then.div_count
        if question == "divergence_mismatches":
            return now.mismatches - then.mismatches
        if question == "divergence":
            count = now.div_count - then.div_count
            if count <= 0:
                raise NoData("no shadow comparisons in this interval")
            return (now.div_sum - then.div_sum) / count
        requests = now.requests - then.requests
        if requests <= 0:
            raise NoData(f"no requests to {variant} in this interval")
        if question == "error_rate":
            return (now.errors - then.errors) / requests
        deltas = {le: now.buckets[le] - then.buckets.get(le, 0.0) for le in now.buckets}
        return bucket_quantile(0.99, deltas) * 1000

    def _snapshot(self) -> Snapshot:
        counts: Snapshot = defaultdict(_Counts)
        m = self.metrics
        for s in _samples(m.requests, "_total"):
            c = counts[(s.labels["route"], s.labels["variant"])]
            c.requests += s.value
            if s.labels["code"].startswith("5"):
                c.errors += s.value
        for s in _samples(m.latency, "_bucket"):
            counts[(s.labels["route"], s.labels["variant"])].buckets[float(s.labels["le"])] += (
                s.value
            )
        for s in _samples(m.divergence, "_sum"):
            counts[(s.labels["route"], s.labels["variant"])].div_sum += s.value
        for s in _samples(m.divergence, "_count"):
            counts[(s.labels["route"], s.labels["variant"])].div_count += s.value
        for s in _samples(m.divergence_mismatches, "_total"):
            counts[(s.labels["route"], s.labels["variant"])].mismatches += s.value
        return counts


def _samples(metric: MetricWrapperBase, suffix: str) -> Iterator[Sample]:
    for family in metric.collect():
        yield from (s for s in family.samples if s.name.endswith(suffix))


def bucket_quantile(q: float, cumulative: dict[float, float]) -> float:
    """Prometheus' ``histogram_quantile`` on cumulative bucket counts keyed by upper bound."""
    bounds = sorted(cumulative)
    total = cumulative.get(math.inf, 0.0)
    if total <= 0:
        raise NoData("no latency observations in this interval")
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is all we know
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


_SELECT = '{route="$route",variant="$variant"}'
_SELECT_5XX = '{route="$route",variant="$variant",code=~"5.."}'
DEFAULT_QUERIES: dict[Question, str] = {
    "requests": f"sum(increase(servegate_requests_total{_SELECT}[$window]))",
    "error_rate": (
        f"(sum(increase(servegate_requests_total{_SELECT_5XX}[$window])) or vector(0))"
        f" / sum(increase(servegate_requests_total{_SELECT}[$window]))"
    ),
    "p99_ms": (
        "histogram_quantile(0.99, sum by (le) "
        f"(rate(servegate_request_duration_seconds_bucket{_SELECT}[$window]))) * 1000"
    ),
    "divergence": (
        f"sum(increase(servegate_canary_divergence_sum{_SELECT}[$window]))"
        f" / sum(increase(servegate_canary_divergence_count{_SELECT}[$window]))"
    ),
    "divergence_samples": f"sum(increase(servegate_canary_divergence_count{_SELECT}[$window]))",
    # No mismatch series at all is a real zero: the comparisons themselves are counted above.
    "divergence_mismatches": (
        f"sum(increase(servegate_canary_divergence_mismatches_total{_SELECT}[$window]))"
        " or vector(0)"
    ),
}


class PromSource(MetricSource):
    """PromQL over ``/api/v1/query``. Queries may use ``$route``, ``$variant`` and ``$window``."""

    def __init__(self, config: PrometheusSource, interval_s: float) -> None:
        self.config = config
        self.window = config.window or f"{max(1, math.ceil(interval_s))}s"
        self._client = httpx.AsyncClient(timeout=config.timeout_s, trust_env=False)

    async def value(
        self, question: Question, route: str, variant: str, query: str | None = None
    ) -> float:
        if question == "requests" and query is None:
            query = self.config.requests_query
        template = string.Template(query or DEFAULT_QUERIES[question])
        promql = template.safe_substitute(route=route, variant=variant, window=self.window)
        return await self.query(promql)

    async def query(self, promql: str) -> float:
        url = self.config.url.rstrip("/") + "/api/v1/query"
        try:
            resp = await self._client.get(url, params={"query": promql})
        except httpx.HTTPError as exc:
            raise SourceError(f"Prometheus unreachable ({type(exc).__name__})") from None
        try:
            body = resp.json()
        except ValueError:
            raise SourceError(f"Prometheus answered HTTP {resp.status_code}, not JSON") from None
        if body.get("status") != "success":
            raise SourceError(f"Prometheus refused the query: {body.get('error', '?')}")
        data = body.get("data", {})
        result = data.get("result")
        if data.get("resultType") == "scalar":
            result = [{"value": result}]
        if not result:
            raise NoData(f"no data for {promql}")
        if len(result) > 1:
            raise SourceError(f"query returned {len(result)} series, expected 1: {promql}")
        value = float(result[0]["value"][1])
        if math.isnan(value):
            raise NoData(f"no data (NaN) for {promql}")
        return value

    async def aclose(self) -> None:
        await self._client.aclose()


def make_source(
    metrics: GatewayMetrics, config: PrometheusSource | None, interval_s: float
) -> MetricSource:
    if config is None:
        return GatewaySource(metrics)
    return PromSource(config, interval_s)
