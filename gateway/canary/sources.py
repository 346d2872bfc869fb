"""Where an analysis reads its numbers: this gateway's own metrics, or a Prometheus server.

Both answer the same questions about one variant of one route over the current interval:

    requests               requests answered (any status)
    successes              requests answered 2xx or 3xx
    error_rate             5xx and timeouts / requests (client 4xx are not errors)
    p99_ms                 99th percentile latency, from the latency histogram's buckets
    divergence             mean of the shadow comparison measure
    divergence_samples     how many comparisons that mean is over
    divergence_mismatches  shadow answers of another shape than the served answer

``GatewaySource`` (one replica, all its worker processes) diffs the live series against a
snapshot taken when the interval began (``gateway.windows``). ``PromSource`` (several
replicas) runs one PromQL query per question over the interval's window; a query may be
replaced per check in the config. Following Flagger, "no
data" (an empty result or NaN) raises ``NoData``: it is never read as a healthy zero.
"""

from __future__ import annotations

import math
import string
from abc import ABC, abstractmethod
from typing import Literal

import httpx

from gateway.config.analysis import PrometheusSource
from gateway.metrics import GatewayMetrics
from gateway.windows import Counts, NoData, Snapshot, take_snapshot

__all__ = [
    "GatewaySource",
    "MetricSource",
    "NoData",
    "PromSource",
    "Question",
    "SourceError",
    "make_source",
]

Question = Literal[
    "requests",
    "successes",
    "error_rate",
    "p99_ms",
    "divergence",
    "divergence_samples",
    "divergence_mismatches",
]


class SourceError(NoData):
    """The source failed (unreachable, bad query): also not judgeable, with the reason."""


class MetricSource(ABC):
    def begin(self, route: str) -> None:  # noqa: B027 - only in-process sources need it
        """A new interval starts for ``route`` now."""

    def observe(self, route: str) -> None:  # noqa: B027 - only in-process sources need it
        """The interval is judged as of now: every following ``value`` reads this moment."""

    @abstractmethod
    async def value(
        self, question: Question, route: str, variant: str, query: str | None = None
    ) -> float:
        """The answer for the interval so far; ``NoData`` when there is none."""

    async def aclose(self) -> None:  # noqa: B027
        pass


class GatewaySource(MetricSource):
    """This gateway's own series (every worker process), diffed against the interval's start."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics
        self._start: dict[str, Snapshot] = {}
        self._end: dict[str, Snapshot] = {}

    def begin(self, route: str) -> None:
        self._start[route] = take_snapshot(self.metrics.families())
        self._end.pop(route, None)

    def observe(self, route: str) -> None:
        # One read of every process's series per verdict, not one per question.
        self._end[route] = take_snapshot(self.metrics.families())

    async def value(
        self, question: Question, route: str, variant: str, query: str | None = None
    ) -> float:
        key = (route, variant)
        if route not in self._end:
            self.observe(route)
        now = self._end[route].get(key, Counts())
        got = now.minus(self._start.get(route, {}).get(key, Counts()))
        counted = {
            "requests": got.requests,
            "successes": got.successes,
            "divergence_samples": got.div_count,
            "divergence_mismatches": got.mismatches,
        }
        if question in counted:
            return counted[question]
        if question == "divergence":
            if got.div_count <= 0:
                raise NoData("no shadow comparisons in this interval")
            return got.div_sum / got.div_count
        if got.requests <= 0:
            raise NoData(f"no requests to {variant} in this interval")
        if question == "error_rate":
            return got.errors / got.requests
        return got.quantile_ms(0.99)


_SELECT = '{route="$route",variant="$variant"}'
_SELECT_5XX = '{route="$route",variant="$variant",code=~"5.."}'
_SELECT_OK = '{route="$route",variant="$variant",code=~"[23].."}'
DEFAULT_QUERIES: dict[Question, str] = {
    "requests": f"sum(increase(servegate_requests_total{_SELECT}[$window]))",
    # No 2xx/3xx series at all is a real zero: the requests themselves are counted above.
    "successes": f"sum(increase(servegate_requests_total{_SELECT_OK}[$window])) or vector(0)",
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
