"""The in-process metric source: interval deltas of the gateway's own series, and p99 read from
histogram buckets the way Prometheus' histogram_quantile reads them."""

from __future__ import annotations

import asyncio
import math

import pytest

from gateway.canary.sources import GatewaySource, NoData
from gateway.metrics import GatewayMetrics
from gateway.windows import bucket_quantile


def test_bucket_quantile_interpolates_within_the_bucket() -> None:
    cumulative = {0.1: 0.0, 0.2: 50.0, 0.5: 100.0, math.inf: 100.0}
    assert bucket_quantile(0.5, cumulative) == pytest.approx(0.2)
    assert bucket_quantile(0.99, cumulative) == pytest.approx(0.2 + 0.3 * 49 / 50)
    with pytest.raises(NoData):
        bucket_quantile(0.99, {math.inf: 0.0})


def test_gateway_source_counts_only_the_current_interval() -> None:
    metrics = GatewayMetrics()

    def serve(code: str, latency_s: float, n: int) -> None:
        for _ in range(n):
            metrics.requests.labels("r", "canary", "rest", code).inc()
            metrics.latency.labels("r", "canary", "rest").observe(latency_s)

    source = GatewaySource(metrics)
    serve("500", 0.01, 50)  # before the interval: not counted
    source.begin("r")

    async def ask(question: str) -> float:
        return await source.value(question, "r", "canary")  # type: ignore[arg-type]

    with pytest.raises(NoData):
        asyncio.run(ask("error_rate"))
    serve("200", 0.004, 90)
    serve("503", 0.004, 5)
    serve("400", 0.004, 5)  # a client error is a request, not an error
    source.observe("r")  # the interval is judged as of now
    assert asyncio.run(ask("requests")) == 100
    assert asyncio.run(ask("error_rate")) == pytest.approx(0.05)
    assert 3.0 <= asyncio.run(ask("p99_ms")) <= 5.0
    with pytest.raises(NoData):
        asyncio.run(ask("divergence"))
    metrics.divergence.labels("r", "canary", "cosine").observe(0.5)
    metrics.divergence.labels("r", "canary", "cosine").observe(1.0)
    source.observe("r")
    assert asyncio.run(ask("divergence")) == pytest.approx(0.75)
    assert asyncio.run(ask("divergence_samples")) == 2
