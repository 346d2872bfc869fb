"""``servegate canary status|start|pause|resume|promote|abort`` against a real gateway, and the
admin API's refusals while an analysis holds the weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from tests.gateway.canary.test_analysis import ERRORS, analysed_route
from tests.gateway.support import TOKEN, RunningGateway, run_gateway, write_config

# Each step is a CLI subprocess (seconds each): out of the fast tier.
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def canary(gw: RunningGateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SERVEGATE_GATEWAY_ADMIN_TOKEN": TOKEN}
    argv = [sys.executable, "-m", "servegate.cli", "canary", *args, "--admin-url", gw.admin_url]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_operator_drives_an_analysis_from_the_cli(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    # A long interval: nothing is judged while the operator acts.
    route = analysed_route("mlp_good", ERRORS, interval_s=600.0)
    config = write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": route})
    with run_gateway(config) as gw:
        assert "mlp: idle" in canary(gw, "status", "mlp").stdout
        started = canary(gw, "start", "mlp")
        assert started.returncode == 0, started.stderr
        assert "mlp: analysing  (stable=75, canary=25)" in started.stdout
        assert "step 1/3 of [25, 50, 100]" in started.stdout

        with gw.admin() as admin:
            version = admin.get("/admin/routes/mlp", headers=gw.auth).json()["version"]
            refused = admin.put(
                "/admin/routes/mlp/weights",
                json={"weights": {"stable": 50, "canary": 50}},
                headers={**gw.auth, "If-Match": f'"{version}"'},
            )
        assert refused.status_code == 409
        assert "pause" in refused.json()["error"]

        again = canary(gw, "start", "mlp")
        assert again.returncode == 1 and "analysing already" in again.stderr
        assert "mlp: paused" in canary(gw, "pause", "mlp").stdout
        assert "mlp: analysing" in canary(gw, "resume", "mlp").stdout
        # An abort ends the run: the route is idle again, the abort is its last run (history).
        aborted = canary(gw, "abort", "mlp")
        assert "mlp: idle  (stable=100, canary=0)" in aborted.stdout
        assert "last run: aborted at" in aborted.stdout and "aborted by" in aborted.stdout
        assert gw.metric("servegate_canary_phase", route="mlp", phase="idle") == 1
        late = canary(gw, "promote", "mlp")
        assert late.returncode == 1 and "it is idle" in late.stderr

        # A new analysis may start after it; an operator may promote at once.
        assert canary(gw, "start", "mlp").returncode == 0
        promoted = canary(gw, "promote", "mlp")
        assert "mlp: idle  (stable=100, canary=0)" in promoted.stdout, promoted.stderr
        assert "last run: promoted at" in promoted.stdout
        unknown = canary(gw, "status", "nope")
        assert unknown.returncode == 1 and "route not found: nope" in unknown.stderr
        decisions = {
            d: gw.metric("servegate_canary_decisions_total", route="mlp", decision=d)
            for d in ("abort", "promote", "rollback")
        }
    assert decisions == {"abort": 1, "promote": 1, "rollback": 0}  # an abort is no rollback
    stable = load_config(config).config.routes["mlp"].stable
    assert (stable.model, stable.weight) == ("mlp_good", 100)
    saved = json.loads(config.with_name("gateway.yaml.canary.json").read_text())["mlp"]
    assert saved["phase"] == "idle" and saved["last_run"]["outcome"] == "promoted"
    # It stays idle across a restart: a finished run never comes back as the current phase.
    with run_gateway(config) as gw:
        assert "mlp: idle" in canary(gw, "status", "mlp").stdout


def test_a_status_file_from_before_the_lifecycle_loads_idle(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    route = analysed_route("mlp_good", ERRORS, interval_s=600.0)
    config = write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": route})
    old = {"phase": "rolled_back", "canary": "canary", "step": 1, "weight": 50, "reason": "x"}
    config.with_name("gateway.yaml.canary.json").write_text(json.dumps({"mlp": old}))
    with run_gateway(config) as gw:
        shown = canary(gw, "status", "mlp").stdout
        assert gw.metric("servegate_canary_phase", route="mlp", phase="idle") == 1
        assert canary(gw, "start", "mlp").returncode == 0
    assert "mlp: idle" in shown and "last run: rolled back" in shown
