"""Automated canary analysis end to end: the fake TorchServe serving canaries with scripted faults
(``tests/support/fake_torchserve.py``: every 5th request fails, +200 ms, outputs at cosine 0.9),
a real gateway judging them from its own metrics, short intervals. Each test lets the analysis
run to its end and judges where it ended, the weights persisted to gateway.yaml and the audit log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from tests.gateway.canary.support import Traffic, act, analysis, audit_actions, wait_finished
from tests.gateway.support import fire, run_gateway, variant, wait_for, write_config

# Each analysis runs whole 2 s intervals: seconds per test, so out of the fast tier.
pytestmark = pytest.mark.slow
PIN = "X-Servegate-Variant"
ERRORS = {"error_rate": {"max": 0.02}}


def analysed_route(canary_model: str, checks: dict[str, Any], **analysis: Any) -> dict[str, Any]:
    shadow = analysis.pop("shadow", None)
    route: dict[str, Any] = {
        "variants": [variant("stable", "mlp_stable", 100), variant("canary", canary_model, 0)],
        "pin_header": PIN,
        "analysis": {
            "canary": "canary",
            # ~2x the requests an interval needs at the traffic rates below, so that a slow
            # moment on a busy 2-core machine does not turn into "no data".
            "interval_s": 2.0,
            "steps": [25, 50, 100],
            "min_requests": 15,
            "threshold": 2,
            "checks": checks,
            **analysis,
        },
    }
    if shadow is not None:
        route["shadow"] = shadow
    return route


def configure(tmp_path: Path, backends: dict[str, Any], route: dict[str, Any]) -> Path:
    return write_config(tmp_path / "gateway.yaml", backends, {"mlp": route})


def weights(config: Path) -> dict[str, tuple[str, int]]:
    route = load_config(config).config.routes["mlp"]
    return {v.name: (v.model, v.weight) for v in route.variants}


def test_healthy_canary_is_promoted_through_every_step(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    checks = {
        **ERRORS,
        "latency": {"p99_max_ms": 1000},
        "divergence": {"min": 0.999},
    }
    shadow = {"variant": "canary", "percent": 50, "compare": "cosine"}
    config = configure(tmp_path, fake_backends, analysed_route("mlp_good", checks, shadow=shadow))
    with run_gateway(config) as gw, Traffic(f"{gw.url}/predictions/mlp") as traffic:
        assert act(gw, "mlp", "start").status_code == 200
        final = wait_finished(gw, "mlp")
        divergence_count = gw.metric(
            "servegate_canary_divergence_count", route="mlp", variant="canary", measure="cosine"
        )
    assert final["outcome"] == "promoted", final
    assert final["failed_checks"] == 0
    # The stable variant now serves the canary's model at 100%, written to gateway.yaml.
    assert weights(config) == {"stable": ("mlp_good", 100), "canary": ("mlp_good", 0)}
    trail = audit_actions(config, "mlp")
    assert [e["action"] for e in trail] == [
        "canary_start",
        "canary_advance",
        "canary_advance",
        "canary_promote",
    ]
    assert [e["new"]["canary"] for e in trail] == [25, 50, 100, 0]
    assert {e["who"] for e in trail[1:]} == {"canary-analysis"}
    # ONNX and TorchScript really computed the same thing on the shadowed requests.
    assert divergence_count > 0
    assert all(code == 200 for code, _ in traffic.answers), traffic.answers


def test_erroring_canary_is_rolled_back_and_stable_serves_everyone(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    route = analysed_route("mlp_errors", ERRORS, min_requests=25)
    config = configure(tmp_path, fake_backends, route)
    with run_gateway(config) as gw:
        with Traffic(f"{gw.url}/predictions/mlp"):
            act(gw, "mlp", "start")
            final = wait_finished(gw, "mlp")
        after = fire(f"{gw.url}/predictions/mlp", 100)
    assert final["outcome"] == "rolled_back", final
    assert final["failed_checks"] == 2
    assert "error_rate" in final["reason"]
    # Rolled back at the first step, after exactly `threshold` failed intervals.
    actions = [e["action"] for e in audit_actions(config, "mlp")]
    assert actions == ["canary_start", "canary_rollback"]
    assert weights(config) == {"stable": ("mlp_stable", 100), "canary": ("mlp_errors", 0)}
    assert after == [(200, "stable")] * 100


def test_slow_canary_is_rolled_back_on_latency(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    checks = {**ERRORS, "latency": {"p99_max_ms": 150}}
    # A slow canary answers few requests per interval: longer intervals, more clients.
    route = analysed_route("mlp_slow", checks, min_requests=10)
    config = configure(tmp_path, fake_backends, route)
    with run_gateway(config) as gw, Traffic(f"{gw.url}/predictions/mlp", workers=16):
        act(gw, "mlp", "start")
        final = wait_finished(gw, "mlp")
    assert final["outcome"] == "rolled_back", final
    by_name = {c["name"]: c for c in final["last_checks"]}
    assert by_name["latency_p99_ms"]["passed"] is False
    assert by_name["latency_p99_ms"]["value"] >= 200
    assert by_name["error_rate"]["passed"] is True
    assert "latency_p99_ms" in final["reason"]


def test_perturbed_canary_is_rolled_back_on_divergence_alone(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    checks = {**ERRORS, "latency": {"p99_max_ms": 1000}, "divergence": {"min": 0.999}}
    shadow = {"variant": "canary", "percent": 100, "compare": "cosine"}
    route = analysed_route("mlp_perturbed", checks, shadow=shadow)
    config = configure(tmp_path, fake_backends, route)
    with run_gateway(config) as gw, Traffic(f"{gw.url}/predictions/mlp", rate=60):
        act(gw, "mlp", "start")
        final = wait_finished(gw, "mlp")
    assert final["outcome"] == "rolled_back", final
    by_name = {c["name"]: c for c in final["last_checks"]}
    assert by_name["error_rate"]["passed"] is True
    assert by_name["latency_p99_ms"]["passed"] is True
    assert by_name["divergence"]["passed"] is False
    assert 0.85 <= by_name["divergence"]["value"] <= 0.95
    assert "divergence" in final["reason"]


def test_route_without_traffic_is_never_promoted_and_fails_at_the_deadline(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    route = analysed_route("mlp_good", ERRORS, interval_s=0.5, deadline_s=1.5)
    config = configure(tmp_path, fake_backends, route)
    with run_gateway(config) as gw:
        act(gw, "mlp", "start")
        final = wait_finished(gw, "mlp")
        decisions = gw.metric("servegate_canary_decisions_total", route="mlp", decision="hold")
    assert final["outcome"] == "rolled_back", final
    assert "no verdict for 1.5s" in final["reason"]  # deadline_s, set explicitly above
    assert decisions >= 2  # it held while waiting before each failure
    assert [e["action"] for e in audit_actions(config, "mlp")] == [
        "canary_start",
        "canary_rollback",
    ]


def test_client_errors_at_the_canary_do_not_roll_it_back(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    route = analysed_route("mlp_good", ERRORS, threshold=1)
    config = configure(tmp_path, fake_backends, route)
    with run_gateway(config) as gw:
        url = f"{gw.url}/predictions/mlp"
        bad = Traffic(url, rate=40, body={"inputs": "not a tensor"}, headers={PIN: "canary"})
        with Traffic(url, rate=40), bad:
            act(gw, "mlp", "start")
            final = wait_finished(gw, "mlp")
    assert final["outcome"] == "promoted", final
    assert final["failed_checks"] == 0
    assert bad.answers[(400, "canary")] >= 50, bad.answers
    assert all(code == 400 for code, _ in bad.answers), bad.answers


def test_restart_mid_analysis_resumes_at_the_same_step(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    steps = [10, 20, 30, 40, 50]
    route = analysed_route("mlp_good", ERRORS, steps=steps, min_requests=10)
    config = configure(tmp_path, fake_backends, route)
    with run_gateway(config) as gw, Traffic(f"{gw.url}/predictions/mlp"):
        act(gw, "mlp", "start")
        wait_for(lambda: analysis(gw, "mlp")["step"] >= 2, "step 3", timeout_s=60)
    status = json.loads(config.with_name("gateway.yaml.canary.json").read_text())["mlp"]
    step = status["step"]
    assert status["phase"] == "analysing" and 2 <= step < len(steps)
    with run_gateway(config) as gw:
        resumed = analysis(gw, "mlp")
        assert (resumed["phase"], resumed["step"]) == ("analysing", step)
        assert resumed["weights"]["canary"] == steps[step]
        with Traffic(f"{gw.url}/predictions/mlp"):
            wait_for(lambda: analysis(gw, "mlp")["step"] != step, "the next step", timeout_s=60)
            after = analysis(gw, "mlp")
    # It went on from there: neither back to the first step nor straight to 100%.
    assert after["step"] == step + 1 or after["last_run"]["outcome"] == "promoted"
    actions = [e["action"] for e in audit_actions(config, "mlp")]
    assert actions.count("canary_start") == 1


def test_canary_that_answers_nothing_successfully_is_never_advanced(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    # Every request the canary gets fails fast as a client error: its error rate reads 0 and
    # its latency is excellent, yet it answered nothing. No step passes: it is rolled back.
    route = analysed_route("mlp_good", ERRORS, threshold=1)
    config = configure(tmp_path, fake_backends, route)
    with run_gateway(config) as gw:
        url = f"{gw.url}/predictions/mlp"
        bad = Traffic(url, rate=40, body={"inputs": "not a tensor"}, headers={PIN: "canary"})
        with Traffic(url, rate=40, headers={PIN: "stable"}), bad:
            act(gw, "mlp", "start")
            final = wait_finished(gw, "mlp")
    assert final["outcome"] == "rolled_back", final
    assert "answered no request successfully" in final["reason"]
    by_name = {c["name"]: c for c in final["last_checks"]}
    assert by_name["requests"]["passed"] is True
    assert by_name["successes"]["value"] == 0 and by_name["successes"]["passed"] is False
    actions = [e["action"] for e in audit_actions(config, "mlp")]
    assert actions == ["canary_start", "canary_rollback"]
