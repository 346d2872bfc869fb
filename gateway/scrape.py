"""Re-expose each backend's TorchServe per-model series labelled with route and variant.

A background task scrapes every backend's ``/metrics`` periodically; ``ScrapedCollector``
yields the last scrape at collection time, one series per (route, variant) whose TorchServe
model name and version match. A failed scrape keeps no stale numbers: that backend's series
vanish and ``servegate_backend_scrape_ok`` says 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from gateway.config import GatewayConfig

log = logging.getLogger(__name__)

# TorchServe family -> the name we expose it under (counters get "_total" appended).
SERIES = {
    "ts_inference_latency_microseconds": "servegate_backend_inference_latency_microseconds",
    "ts_queue_latency_microseconds": "servegate_backend_queue_latency_microseconds",
    "ts_inference_requests": "servegate_backend_inference_requests",
}
Samples = dict[str, dict[tuple[str, str], float]]  # family -> (model, version) -> value


def parse(text: str) -> Samples:
    out: Samples = {name: {} for name in SERIES}
    for family in text_string_to_metric_families(text):
        if family.name not in SERIES:
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            model = sample.labels.get("model_name", "")
            version = sample.labels.get("model_version", "")
            out[family.name][(model, version)] = sample.value
    return out


class ScrapedCollector(Collector):
    def __init__(self, config: Callable[[], GatewayConfig]) -> None:
        self._config = config
        self.latest: dict[str, Samples | None] = {}

    def update(self, backend: str, text: str | None) -> None:
        try:
            self.latest[backend] = parse(text) if text is not None else None
        except ValueError as exc:
            log.warning("unparseable metrics from backend %s: %s", backend, exc)
            self.latest[backend] = None

    def collect(self) -> Iterator[Metric]:
        config = self._config()
        names = ["route", "variant", "backend", "model", "version"]
        families = {
            ts: CounterMetricFamily(ours, f"TorchServe {ts}", labels=names)
            for ts, ours in SERIES.items()
        }
        ok = GaugeMetricFamily(
            "servegate_backend_scrape_ok", "1 when the last scrape worked", labels=["backend"]
        )
        for backend in config.backends:
            ok.add_metric([backend], 1.0 if self.latest.get(backend) else 0.0)
        for route_name, route in config.routes.items():
            for v in route.variants:
                samples = self.latest.get(v.backend)
                if not samples:
                    continue
                for ts_name, family in families.items():
                    value = samples[ts_name].get((v.model, v.version))
                    if value is not None:
                        family.add_metric(
                            [route_name, v.name, v.backend, v.model, v.version], value
                        )
        yield from families.values()
        yield ok
