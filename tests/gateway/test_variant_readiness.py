"""A variant whose backend does not serve its model/version: the variant's fault (503, counted),
never the client's; a config that brings one in is refused naming it, or, with its backend
down, accepted with the variant shown not ready. A rejected file is said to be what it is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.config.watch import RECHECK_S
from tests.conftest import free_ports
from tests.gateway.support import (
    MLP_ROW,
    TOKEN,
    RunningGateway,
    fire,
    run_gateway,
    split_route,
    variant,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration
PIN = "X-Servegate-Variant"
OIP_BODY = {"inputs": [{"name": "features", "shape": [1, 16], "datatype": "FP32", "data": MLP_ROW}]}


def cli(gw: RunningGateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SERVEGATE_GATEWAY_ADMIN_TOKEN": TOKEN}
    argv = [sys.executable, "-m", "servegate.cli", *args, "--admin-url", gw.admin_url]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)


def put_weights(gw: RunningGateway, weights: dict[str, int]) -> httpx.Response:
    with gw.admin() as a:
        version = a.get("/admin/routes/mlp", headers=gw.auth).headers["etag"]
        return a.put(
            "/admin/routes/mlp/weights",
            json={"weights": weights},
            headers={**gw.auth, "If-Match": version},
        )


def routes(gw: RunningGateway) -> dict[str, Any]:
    with gw.admin() as a:
        body: dict[str, Any] = a.get("/admin/routes", headers=gw.auth).json()
    return body


def misspelled(stable: int, canary: int) -> dict[str, Any]:
    route = split_route(stable, canary, pin_header=PIN)
    route["variants"][1]["model"] = "mlp_onxx"
    return route


def test_a_model_its_backend_does_not_serve_is_the_variants_fault(
    tmp_path: Path, backends: dict[str, Any]
) -> None:
    # A gateway may start on such a config (its backend may come later): it serves, and shows
    # the variant not ready, refuses traffic to it and counts its failures as upstream errors.
    config = write_config(tmp_path / "gateway.yaml", backends, {"mlp": misspelled(100, 0)})
    with run_gateway(config) as gw, gw.client() as c:
        wait_for(lambda: routes(gw)["readiness"]["mlp"]["canary"]["ready"] is False, "readiness")
        pinned = c.post("/predictions/mlp", json={"inputs": [MLP_ROW]}, headers={PIN: "canary"})
        oip = c.post("/v2/models/mlp/infer", json=OIP_BODY, headers={PIN: "canary"})
        served = fire(f"{gw.url}/predictions/mlp", 10)
        ready = c.get("/v2/models/mlp/ready")
        errors = gw.metric(
            "servegate_upstream_errors_total", route="mlp", variant="canary", kind="model_missing"
        )
        canary_ready = gw.metric("servegate_variant_ready", route="mlp", variant="canary")
        stable_ready = gw.metric("servegate_variant_ready", route="mlp", variant="stable")
        raised = put_weights(gw, {"stable": 90, "canary": 10})
        unchanged = put_weights(gw, {"stable": 100, "canary": 0})
        shown = cli(gw, "routes")
    # 503 in each protocol's shape, naming the variant, never TorchServe's 404 or its internals.
    assert pinned.status_code == 503 and pinned.headers[PIN.lower()] == "canary"
    assert pinned.json()["type"] == "ServiceUnavailableException"
    assert "mlp_onxx" not in pinned.text and "Exception" not in pinned.json()["message"]
    assert oip.status_code == 503 and set(oip.json()) == {"error"}
    assert errors == 2 and (canary_ready, stable_ready) == (0, 1)
    assert served == [(200, "stable")] * 10
    assert ready.status_code == 200  # the canary takes no traffic: the route is ready
    assert raised.status_code == 400
    assert "variant 'canary'" in raised.json()["error"] and "mlp_onxx" in raised.json()["error"]
    assert unchanged.status_code == 200, unchanged.text
    assert "canary=0 (mlp_onxx/1.0) NOT READY: backend 'ts' does not serve" in shown.stdout


def test_an_edit_naming_a_model_the_backend_does_not_serve_is_refused_and_said_so(
    tmp_path: Path, backends: dict[str, Any]
) -> None:
    good = {"mlp": split_route(90, 10, pin_header=PIN)}
    config = write_config(tmp_path / "gateway.yaml", backends, good)
    with run_gateway(config) as gw:
        version = routes(gw)["version"]
        write_config(config, backends, {"mlp": misspelled(90, 10)})
        rejected = {"result": "rejected"}
        wait_for(lambda: gw.metric("servegate_config_reloads_total", **rejected) == 1, "reject")
        answers = fire(f"{gw.url}/predictions/mlp", 40)
        listed = routes(gw)
        status = httpx.get(f"{gw.admin_url}/status.json", timeout=10).json()
        refused = put_weights(gw, {"stable": 80, "canary": 20})
        cli_set = cli(gw, "canary", "set", "mlp", "stable=80", "canary=20")
        shown = cli(gw, "routes")
        # Fixed by hand (another valid edit): it applies, is audited, and writes work again.
        write_config(config, backends, {"mlp": split_route(80, 20, pin_header=PIN)})
        wait_for(lambda: routes(gw)["file"]["serving"], "the fixed file to apply")
        after = put_weights(gw, {"stable": 70, "canary": 30})
        audit_path = gw.settings.audit_path()
    assert {code for code, _ in answers} == {200}  # the last good config kept serving
    assert listed["version"] == version
    file = listed["file"]
    assert file["serving"] is False and file["version"] != version
    assert "variant 'canary'" in file["error"] and "'mlp_onxx'" in file["error"]
    assert status["file"] == file
    # Not "re-read and retry" (412) forever: what is wrong and what to do.
    assert refused.status_code == 409
    message = refused.json()["error"]
    assert "on disk" in message and "is not what serves" in message and "mlp_onxx" in message
    assert "Fix the file or revert it" in message
    assert cli_set.returncode == 1 and "HTTP 409" in cli_set.stderr
    assert "WARNING: the config file on disk" in shown.stdout and "mlp_onxx" in shown.stdout
    assert after.status_code == 200, after.text
    entries = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert [(e["who"], e["action"]) for e in entries] == [
        ("file", "file_edit"),
        ("admin", "set_weights"),
    ]
    assert entries[0]["old"] == {"stable": 90, "canary": 10}
    assert entries[0]["new"] == {"stable": 80, "canary": 20}


def test_an_edit_whose_backend_is_down_applies_with_the_variant_not_ready(
    tmp_path: Path, backends: dict[str, Any]
) -> None:
    config = write_config(tmp_path / "gateway.yaml", backends, {"mlp": split_route(100, 0)})
    down = {"kind": "torchserve", "inference_url": f"http://127.0.0.1:{free_ports(1)[0]}"}
    route = split_route(90, 0)
    route["variants"].append(variant("spare", "mlp_torchscript", 10, backend="down"))
    with run_gateway(config) as gw, gw.client() as c:
        write_config(config, {**backends, "down": down}, {"mlp": route})
        applied = {"result": "applied"}
        wait_for(lambda: gw.metric("servegate_config_reloads_total", **applied) == 1, "apply")
        wait_for(
            lambda: (
                gw.metric("servegate_variant_ready", route="mlp", variant="spare") == 0
                and routes(gw)["readiness"]["mlp"]["spare"]["ready"] is False
            ),
            "spare not ready",
        )
        ready = c.get("/v2/models/mlp/ready")
        stable_ready = c.get("/v2/models/mlp/versions/1.0/ready")
        status = httpx.get(f"{gw.admin_url}/status.json", timeout=10).json()
        shown = cli(gw, "routes")
    assert ready.status_code == 503 and ready.json() == {"name": "mlp", "ready": False}
    assert stable_ready.status_code == 200  # version 1.0 resolves to stable, which is served
    spare = next(v for v in status["routes"][0]["variants"] if v["name"] == "spare")
    assert spare["ready"]["ready"] is False and spare["ready"]["state"] == "unreachable"
    assert "spare=10 (mlp_torchscript/1.0) NOT READY: backend 'down' could not be asked" in (
        shown.stdout
    )


@pytest.mark.slow
def test_a_bad_file_is_reported_once_and_kept_rejected(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    # Refused edits are vetted again (a backend may come to serve the model), but a rejection
    # that has not changed is neither logged nor counted again.
    config = write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": split_route(100, 0)})
    with run_gateway(config) as gw:
        text = yaml.safe_load(config.read_text())
        text["routes"]["mlp"]["variants"][1]["model"] = "nope"
        config.write_text(yaml.safe_dump(text))
        rejected = {"result": "rejected"}
        wait_for(lambda: gw.metric("servegate_config_reloads_total", **rejected) == 1, "reject")
        wait_for(lambda: not routes(gw)["file"]["serving"], "file state")
        until = time.monotonic() + 3 * RECHECK_S  # three recheck periods, traffic flowing
        while time.monotonic() < until:
            assert fire(f"{gw.url}/predictions/mlp", 4) == [(200, "stable")] * 4
        assert gw.metric("servegate_config_reloads_total", **rejected) == 1
