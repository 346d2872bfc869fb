"""A hand edit of gateway.yaml during an analysis is treated like the admin API's change: with
``on_file_edit: pause`` (the default) it applies and pauses the analysis, which then no longer
overwrites it; with ``refuse`` it is rejected, said so, and applies once the run is paused. Every
applied file edit is in the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.canary.support import act, analysis, audit_actions
from tests.gateway.canary.test_analysis import ERRORS, analysed_route
from tests.gateway.support import run_gateway, wait_for, write_config

pytestmark = pytest.mark.integration


def weights(gw: Any) -> dict[str, int]:
    return dict(analysis(gw, "mlp")["weights"])


def test_a_hand_edit_pauses_the_analysis_and_stays(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    # A long interval: nothing is judged, so only the edit can change the phase.
    route = analysed_route("mlp_good", ERRORS, interval_s=600.0)
    config = write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": route})
    with run_gateway(config) as gw:
        assert act(gw, "mlp", "start").status_code == 200
        assert weights(gw) == {"stable": 75, "canary": 25}
        edited = analysed_route("mlp_good", ERRORS, interval_s=600.0)
        edited["variants"][0]["weight"], edited["variants"][1]["weight"] = 60, 40
        write_config(config, fake_backends, {"mlp": edited})
        wait_for(lambda: analysis(gw, "mlp")["phase"] == "paused", "the analysis to pause")
        paused = analysis(gw, "mlp")
        assert act(gw, "mlp", "resume").status_code == 200
        resumed = weights(gw)
    assert paused["weights"] == {"stable": 60, "canary": 40}  # applied, not overwritten
    assert "changed the variants by hand" in paused["reason"]
    assert "servegate canary resume mlp" in paused["reason"]
    assert resumed == {"stable": 75, "canary": 25}  # resume re-applies the analysis' step
    trail = [(e["who"], e["action"], e["new"]) for e in audit_actions(config, "mlp")]
    assert [(who, action) for who, action, _ in trail] == [
        ("admin", "canary_start"),
        ("file", "file_edit"),
        ("admin", "canary_resume"),
    ]
    assert trail[1][2] == {"stable": 60, "canary": 40}


def test_with_refuse_a_hand_edit_is_rejected_until_the_run_is_paused(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    route = analysed_route("mlp_good", ERRORS, interval_s=600.0, on_file_edit="refuse")
    config = write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": route})
    with run_gateway(config) as gw:
        assert act(gw, "mlp", "start").status_code == 200
        edited = analysed_route("mlp_good", ERRORS, interval_s=600.0, on_file_edit="refuse")
        edited["variants"][0]["weight"], edited["variants"][1]["weight"] = 60, 40
        write_config(config, fake_backends, {"mlp": edited})
        rejected = {"result": "rejected"}
        wait_for(lambda: gw.metric("servegate_config_reloads_total", **rejected) == 1, "reject")
        running = analysis(gw, "mlp")
        with gw.admin() as a:
            file = a.get("/admin/routes", headers=gw.auth).json()["file"]
        assert act(gw, "mlp", "pause").status_code == 200
        # The refused file is vetted again: with the run paused it applies.
        wait_for(lambda: weights(gw) == {"stable": 60, "canary": 40}, "the edit to apply")
        final = analysis(gw, "mlp")
        status = httpx.get(f"{gw.admin_url}/status.json", timeout=10).json()
    assert running["phase"] == "analysing"
    assert running["weights"] == {"stable": 75, "canary": 25}
    assert file["serving"] is False and "on_file_edit: refuse" in file["error"]
    assert "servegate canary pause mlp" in file["error"]
    assert final["phase"] == "paused" and status["file"]["serving"] is True
    assert [e["action"] for e in audit_actions(config, "mlp")] == ["canary_start", "file_edit"]
