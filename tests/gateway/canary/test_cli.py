"""``servegate canary status|start|pause|resume|promote|abort`` against a real gateway, and the
admin API's refusals while an analysis holds the weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from tests.gateway.canary.test_analysis import ERRORS, analysed_route
from tests.gateway.support import TOKEN, RunningGateway, run_gateway, write_config

pytestmark = pytest.mark.integration


def canary(gw: RunningGateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SERVEGATE_GATEWAY_ADMIN_TOKEN": TOKEN}
    argv = [sys.executable, "-m", "servegate.cli", "canary", *args, "--admin-url", gw.admin_url]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_operator_drives_an_analysis_from_the_cli(
    tmp_path: Path, canary_backends: dict[str, Any]
) -> None:
    # A long interval: nothing is judged while the operator acts.
    route = analysed_route("mlp_good", ERRORS, interval_s=600.0)
    config = write_config(tmp_path / "gateway.yaml", canary_backends, {"mlp": route})
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
        aborted = canary(gw, "abort", "mlp")
        assert "mlp: rolled_back  (stable=100, canary=0)" in aborted.stdout
        assert "aborted by" in aborted.stdout
        late = canary(gw, "promote", "mlp")
        assert late.returncode == 1 and "it is rolled_back" in late.stderr

        # A new analysis may start after a rollback; an operator may promote at once.
        assert canary(gw, "start", "mlp").returncode == 0
        promoted = canary(gw, "promote", "mlp")
        assert "mlp: promoted" in promoted.stdout, promoted.stderr
        unknown = canary(gw, "status", "nope")
        assert unknown.returncode == 1 and "route not found: nope" in unknown.stderr
    stable = load_config(config).config.routes["mlp"].stable
    assert (stable.model, stable.weight) == ("mlp_good", 100)
    status = canary_metrics_after(config)
    assert status == "promoted"


def canary_metrics_after(config: Path) -> str:
    import json

    return str(json.loads(config.with_name("gateway.yaml.canary.json").read_text())["mlp"]["phase"])
