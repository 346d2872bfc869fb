"""The analysis state as Prometheus series, computed at scrape time from the persisted status
(so the numbers on ``/metrics`` are exactly what the status page and the CLI show)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.canary.status import RouteStatus
from gateway.config import GatewayConfig
from gateway.metrics import CANARY_PHASES


class CanaryCollector(Collector):
    def __init__(
        self, config: Callable[[], GatewayConfig], status: Callable[[str], RouteStatus]
    ) -> None:
        self.config = config
        self.status = status

    def collect(self) -> Iterator[Metric]:
        phase = GaugeMetricFamily(
            "servegate_canary_phase",
            "Canary analysis phase per route, 1 for the current one of: "
            + ", ".join(CANARY_PHASES),
            labels=["route", "phase"],
        )
        step = GaugeMetricFamily(
            "servegate_canary_step", "Current analysis step (0-based)", labels=["route"]
        )
        failed = GaugeMetricFamily(
            "servegate_canary_failed_checks",
            "Failed analysis intervals so far (rollback at the threshold)",
            labels=["route"],
        )
        checks = GaugeMetricFamily(
            "servegate_canary_check_value",
            "Last measured value of each analysis check",
            labels=["route", "check"],
        )
        for name, route in self.config().routes.items():
            if route.analysis is None:
                continue
            status = self.status(name)
            for candidate in CANARY_PHASES:
                phase.add_metric([name, candidate], 1 if candidate == status.phase else 0)
            step.add_metric([name], status.step)
            failed.add_metric([name], status.failed_checks)
            for check in status.last_checks:
                if check.value is not None:
                    checks.add_metric([name, check.name], check.value)
        yield from (phase, step, failed, checks)
