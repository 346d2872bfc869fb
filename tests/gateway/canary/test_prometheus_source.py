"""Canary analysis from a real Prometheus (Debian's package) scraping the gateway: one route is
promoted, one rolled back, and a series Prometheus has no data for is "no data", never 0."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.canary.sources import NoData, PromSource
from gateway.config.analysis import PrometheusSource
from tests.conftest import free_ports
from tests.gateway.canary.support import Traffic, act, audit_actions, prometheus, wait_finished
from tests.gateway.canary.test_analysis import ERRORS, analysed_route
from tests.gateway.support import run_gateway, write_config

# A real Prometheus and whole 2 s analysis intervals: seconds, so out of the fast tier.
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_prometheus_source_drives_a_promotion_and_a_rollback(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    (prom_port,) = free_ports(1)
    source = {
        "source": "prometheus",
        "prometheus": {"url": f"http://127.0.0.1:{prom_port}", "window": "3s"},
    }
    routes = {
        name: analysed_route(model, ERRORS, interval_s=2.0, metrics=source)
        for name, model in (("good", "mlp_good"), ("bad", "mlp_errors"))
    }
    config = write_config(tmp_path / "gateway.yaml", fake_backends, routes)
    with run_gateway(config) as gw:
        admin = f"127.0.0.1:{gw.settings.admin_port}"
        with prometheus([admin], tmp_path / "prom", port=prom_port) as prom_url:
            with (
                Traffic(f"{gw.url}/predictions/good", rate=50),
                Traffic(f"{gw.url}/predictions/bad", rate=50),
            ):
                act(gw, "good", "start")
                act(gw, "bad", "start")
                good = wait_finished(gw, "good")
                bad = wait_finished(gw, "bad")
            nothing = _query(prom_url, "error_rate", "no_such_route")
    assert good["outcome"] == "promoted", good
    assert good["source"] == "prometheus"
    assert bad["outcome"] == "rolled_back", bad
    assert "error_rate" in bad["reason"]
    assert [e["action"] for e in audit_actions(config, "bad")] == [
        "canary_start",
        "canary_rollback",
    ]
    assert isinstance(nothing, NoData)


def _query(url: str, question: str, route: str) -> float | Exception:
    async def main() -> float | Exception:
        source = PromSource(PrometheusSource(url=url, window="3s"), interval_s=2.0)
        try:
            return await source.value(question, route, "canary")  # type: ignore[arg-type]
        except NoData as exc:
            return exc
        finally:
            await source.aclose()

    return asyncio.run(main())
