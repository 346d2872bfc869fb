"""Against a real gateway in front of the session's real TorchServe: every metric name that the
Grafana dashboard and the alert rules query exists on the gateway's /metrics once traffic has
flowed, and the containers' healthcheck script judges the real health endpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_ports
from tests.deploy.support import (
    DEPLOY,
    dashboard_exprs,
    metric_names,
    recorded_names,
    rule_exprs,
)
from tests.gateway.support import (
    fire,
    run_gateway,
    split_route,
    ts_backend,
    variant,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration

# Series that Prometheus itself writes for every target: never on a gateway's /metrics.
PROMETHEUS_SYNTHETIC = {"up"}
# Queried before any gateway emits them, each with its reason. The test below fails as soon as
# a live gateway does emit one, so an entry cannot outlive its reason.
NOT_YET_EMITTED: dict[str, str] = {}
HEALTHCHECK = DEPLOY / "docker" / "healthcheck.py"
PIN = "X-Servegate-Variant"


@pytest.fixture(scope="module")
def live_names(torchserve: Any, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """/metrics after traffic that makes every labelled family appear: answers from both
    variants, compared shadow copies, a canary analysis, an unreachable backend (ejected), a
    backend refusing the gateway's key, and a rejected config edit."""
    tmp = tmp_path_factory.mktemp("deploy")
    wrong_key = tmp / "wrong_key_file.json"
    wrong_key.write_text(json.dumps({"management": {"key": "x"}, "inference": {"key": "wrong"}}))
    backends = {
        "ts": ts_backend(torchserve),
        "badkey": ts_backend(torchserve, key_file=str(wrong_key)),
        "down": {"kind": "torchserve", "inference_url": f"http://127.0.0.1:{free_ports(1)[0]}"},
    }
    routes = {
        "mlp": split_route(
            90,
            10,
            pin_header=PIN,
            shadow={"variant": "canary", "percent": 100, "compare": "max_abs"},
            analysis={
                "canary": "canary",
                "interval_s": 600,  # idle: only its phase is exported
                "steps": [10, 50],
                "checks": {"divergence": {"max": 1e-4}},
            },
        ),
        "flaky": {
            "variants": [
                variant("stable", "mlp_torchscript", 50),
                variant("down", "mlp_torchscript", 50, backend="down"),
            ],
            "pin_header": PIN,
            "outlier_ejection": {"consecutive_failures": 1, "backoff_s": 600},
        },
        "broken": {
            "variants": [
                variant("stable", "mlp_torchscript", 100, backend="down"),
                variant("canary", "mlp_onnx", 0, backend="badkey"),
            ],
            "pin_header": PIN,
            "shadow": {"variant": "canary", "percent": 100},
        },
    }
    config = write_config(tmp / "gateway.yaml", backends, routes)
    with run_gateway(config) as gw:
        for route, variant_name, status in (
            ("mlp", "stable", 200),
            ("mlp", "canary", 200),
            ("broken", "stable", 503),
            ("broken", "canary", 503),
            ("flaky", "down", 503),
        ):
            answers = fire(
                f"{gw.url}/predictions/{route}", 3, headers_for=lambda i, v=variant_name: {PIN: v}
            )
            assert [code for code, _ in answers] == [status] * 3, (route, variant_name, answers)
        backend = {"route": "mlp", "variant": "canary", "model": "mlp_onnx"}
        wait_for(
            lambda: gw.metric("servegate_backend_queue_latency_microseconds_total", **backend) > 0,
            "TorchServe's series re-exposed",
        )
        wait_for(
            lambda: gw.metric("servegate_shadow_failures_total", route="broken") > 0,
            "a failed shadow copy counted",
        )
        wait_for(
            lambda: gw.metric("servegate_canary_divergence_count", route="mlp") > 0,
            "a shadow answer compared",
        )
        config.write_text(config.read_text().replace("weight: 90", "weight: 95"))  # sum 105
        wait_for(
            lambda: gw.metric("servegate_config_reloads_total", result="rejected") > 0,
            "the invalid edit rejected",
        )
        text = httpx.get(f"{gw.admin_url}/metrics", timeout=10).text
        assert _run_healthcheck(f"{gw.url}/v2/health/live") == 0
        assert _run_healthcheck(f"{gw.url}/v2/no-such-endpoint") == 1
        assert _run_healthcheck(f"{gw.url}/v2/health/live", f"grpc://{gw.grpc_address}") == 0
        assert _run_healthcheck(f"grpc://127.0.0.1:{free_ports(1)[0]}") == 1
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_healthcheck_passes_on_a_ready_gateway(torchserve: Any, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "gateway.yaml", {"ts": ts_backend(torchserve)}, {"mlp": split_route(100, 0)}
    )
    with run_gateway(config) as gw:
        wait_for(lambda: httpx.get(f"{gw.url}/v2/health/ready").status_code == 200, "ready")
        assert _run_healthcheck(f"{gw.url}/v2/health/ready") == 0
    assert _run_healthcheck(f"{gw.url}/v2/health/ready") == 1, "a stopped gateway is unhealthy"


def _run_healthcheck(*urls: str) -> int:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *urls], check=False, capture_output=True
    ).returncode


def test_dashboard_and_alert_metrics_exist_on_a_live_gateway(live_names: set[str]) -> None:
    queries = {
        **{f"dashboard {k}": v for k, v in dashboard_exprs().items()},
        **{f"rule {k}": v for k, v in rule_exprs().items()},
    }
    assert len(queries) > 15
    allowed = live_names | recorded_names() | PROMETHEUS_SYNTHETIC | set(NOT_YET_EMITTED)
    missing = {where: sorted(metric_names(expr) - allowed) for where, expr in queries.items()}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"queried but never exposed: {missing}"


def test_not_yet_emitted_names_are_really_absent(live_names: set[str]) -> None:
    assert not set(NOT_YET_EMITTED) & live_names, "a gateway emits it now: drop the exception"


def test_a_misspelt_metric_would_be_caught(live_names: set[str]) -> None:
    assert metric_names('sum(rate(servegate_request_total{code="200"}[5m]))') - live_names


def test_healthcheck_sends_torchserves_key(torchserve: Any, tmp_path: Path) -> None:
    """TorchServe answers /ping 400 without its inference key while token auth is on."""
    url = f"{torchserve.inference_url}/ping"
    assert _run_healthcheck(url) == 1
    key_file = str(torchserve.settings.key_file)
    ok = subprocess.run(
        [sys.executable, str(HEALTHCHECK), url, "--key-file", key_file],
        check=False,
        capture_output=True,
    )
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run(
        [sys.executable, str(HEALTHCHECK), url, "--key-file", str(tmp_path / "none.json")],
        check=False,
    )
    assert missing.returncode == 1
