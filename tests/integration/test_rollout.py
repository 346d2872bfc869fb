"""``servegate rollout`` end to end, as a user runs it, with 20 requests a second flowing through
a real gateway into a real TorchServe the whole time: a version that promotes (the previous one
unloaded after the grace period), one that diverges and rolls back (the route exactly as before,
the version unloaded), and ones that fail their warm-up, their manifest or their parity report
(refused before any traffic moves).
Every request is counted by the variant that answered it; the stable variant must fail none."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from export.pipeline import ExportRequest, run_export
from export.report import ExportReport, FormatReport, report_dir
from gateway.config import audit
from servegate import pins
from servegate.torchserve.process import TorchServe
from servegate.torchserve.settings import TorchServeSettings
from tests.conftest import QUICK_TIMING, SERVING_OVERRIDES, fresh_ports
from tests.gateway.canary.support import faulty_archive
from tests.gateway.support import (
    MLP_ROW,
    TOKEN,
    RunningGateway,
    run_gateway,
    ts_backend,
    variant,
    write_config,
)
from tests.support.archives import copy_archives
from tests.support.cli import run_servegate
from tests.support.steady_load import HttpLoad
from tests.support.tsclient import TorchServeClient

pytestmark = [pytest.mark.export, pytest.mark.torchserve]
RATE = 20.0
ANALYSIS = {
    "canary": "canary",
    "interval_s": 2,
    "steps": [30, 60],
    "min_requests": 5,
    "threshold": 2,
    "checks": {"error_rate": {"max": 0.01}, "divergence": {"min": 0.99, "min_samples": 5}},
}


@pytest.fixture(scope="module")
def rollout_store(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mlp 1.0 (TorchScript) as served, 2.0 exported beside it, two faulty 2.x whose export
    passed parity (the fault is in serving, which only a warm-up or a canary can see), 2.3
    whose manifest fails (pinned and reported as passing: only the manifest check can see it)
    and 2.4, intact, whose export report says it failed parity."""
    store = tmp_path_factory.mktemp("rollout-store")
    copy_archives(model_store, store, "mlp_torchscript.mar")
    exported = run_export(
        ExportRequest(
            model="mlp",
            out=store,
            formats=("torchscript",),
            timing=QUICK_TIMING,
            serving_overrides=SERVING_OVERRIDES["mlp"],
            version="2.0",
        )
    )
    assert not exported.failed
    source = store / "mlp_torchscript.mar"
    for version, faults in (("2.1", {"cosine": 0.5}), ("2.2", {"error_share": 1.0})):
        mar = faulty_archive(source, store, "mlp_torchscript", faults, version=version)
        digest = pins.read(pins.pin_file_for(store)).archives[mar.name].sha256
        entry = FormatReport(parity_ok=True, archive=str(mar), archive_sha256=digest)
        where = report_dir(store, "mlp", version)
        where.mkdir(parents=True)
        ExportReport(model="mlp", version=version, formats={"torchscript": entry}).write(where)
    for version, parity_ok in (("2.3", True), ("2.4", False)):
        mar = faulty_archive(source, store, "mlp_torchscript", {}, version=version)
        if version == "2.3":
            _tamper(mar)
            pins.record(
                pins.pin_file_for(store), mar, model="mlp", fmt="torchscript", version=version
            )
        digest = pins.read(pins.pin_file_for(store)).archives[mar.name].sha256
        entry = FormatReport(
            parity_ok=parity_ok,
            error="" if parity_ok else "parity: max abs err 0.4",
            archive=str(mar),
            archive_sha256=digest,
        )
        where = report_dir(store, "mlp", version)
        where.mkdir(parents=True)
        ExportReport(model="mlp", version=version, formats={"torchscript": entry}).write(where)
    return store


def _tamper(mar: Path) -> None:
    """Add a line to model-config.yaml inside ``mar``; its manifest no longer holds."""
    with zipfile.ZipFile(mar) as z:
        files = {i.filename: z.read(i) for i in z.infolist()}
    files["model-config.yaml"] += b"# not what was exported\n"
    with zipfile.ZipFile(mar, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)


@pytest.fixture
def ts(rollout_store: Path, tmp_path: Path) -> Iterator[TorchServeClient]:
    """A TorchServe of its own (a rollout changes what it serves), started on 1.0 only."""
    settings = TorchServeSettings(
        store=rollout_store,
        workdir=tmp_path / "ts",
        ports=fresh_ports(),
        models=("mlp_torchscript",),
    )
    server = TorchServe(settings)
    server.start()
    try:
        server.wait_ready()
        yield TorchServeClient(settings, server.keys())
    finally:
        server.stop()


@dataclass
class Stack:
    ts: TorchServeClient
    gw: RunningGateway
    config: Path
    token_file: Path

    def rollout(self, *args: str) -> Any:
        return run_servegate(
            "rollout",
            *args,
            "--workdir",
            str(self.ts.settings.workdir),
            "--admin-url",
            self.gw.admin_url,
            "--token-file",
            str(self.token_file),
        )

    def route(self) -> dict[str, Any]:
        with self.gw.admin() as a:
            body: dict[str, Any] = a.get("/admin/routes/mlp", headers=self.gw.auth).json()
        return body["route"]

    def loaded(self, version: str) -> bool:
        s = self.ts.settings
        resp = httpx.get(
            f"{s.url('management')}/models/mlp_torchscript/{version}",
            headers={"Authorization": f"Bearer {self.ts.keys.management.key}"},
            timeout=10,
        )
        assert resp.status_code in (200, 404), resp.text
        return resp.status_code == 200

    def audit(self) -> list[dict[str, Any]]:
        return [dict(e) for e in audit.read(self.gw.settings.audit_path())]


@pytest.fixture
def stack(
    ts: TorchServeClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Stack]:
    """The gateway in front of ``ts`` with route mlp; ``indirect`` parameters override entries
    of its analysis."""
    monkeypatch.setenv("SERVEGATE_HOME", str(tmp_path))  # the rollout's state goes there
    route = {
        # The canary variant serves stable's own model until a rollout puts a version there.
        "variants": [
            variant("stable", "mlp_torchscript", 100),
            variant("canary", "mlp_torchscript", 0),
        ],
        "pin_header": "X-Servegate-Variant",
        "shadow": {"variant": "canary", "percent": 50, "compare": "cosine"},
        "analysis": {**ANALYSIS, **getattr(request, "param", {})},
    }
    config = write_config(tmp_path / "gateway.yaml", {"ts": ts_backend(ts)}, {"mlp": route})
    token_file = tmp_path / "admin_token"
    token_file.write_text(TOKEN + "\n")
    with run_gateway(config) as gw:
        yield Stack(ts, gw, config, token_file)


def load(stack: Stack) -> HttpLoad:
    return HttpLoad(f"{stack.gw.url}/predictions/mlp", RATE, lambda i: {"inputs": [MLP_ROW]})


def state(tmp_path: Path) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(
        (tmp_path / ".servegate" / "rollouts" / "mlp.json").read_text()
    )
    return body


def test_a_version_rolls_out_promotes_and_the_previous_one_is_retired(
    stack: Stack, tmp_path: Path
) -> None:
    with load(stack) as traffic:
        time.sleep(2)  # load before, through and after every step
        began = time.monotonic()
        result = stack.rollout("mlp", "--version", "2.0", "--grace", "2")
        took = time.monotonic() - began
        time.sleep(2)
    assert result.returncode == 0, result.stdout + result.stderr
    counts = traffic.by_variant()
    print(f"\nrollout to promotion and retirement in {took:.1f} s under {RATE:g} req/s: {counts}")
    print(result.stdout)
    assert traffic.failures() == {}, traffic.failures()  # not one request failed, any variant
    assert counts[("canary", "ok")] > 0 and counts[("stable", "ok")] > 0
    assert "retired mlp_torchscript/1.0 (unloaded)" in result.stdout
    recorded = state(tmp_path)
    assert recorded["phase"] == "promoted" and recorded["retired"] == "mlp_torchscript/1.0"
    first = recorded["first_canary_request_s"]
    assert first is not None and first < took
    print(f"first canary request {first:.2f} s after `servegate rollout` began")

    stable, canary = stack.route()["variants"]
    assert (stable["model"], stable["version"], stable["weight"]) == ("mlp_torchscript", "2.0", 100)
    assert (canary["version"], canary["weight"]) == ("2.0", 0)
    assert not stack.loaded("1.0") and stack.loaded("2.0")
    # The version is public: /predictions/{model}/{version} and OIP versions/{version}.
    with stack.gw.client() as c:
        assert c.post("/predictions/mlp/2.0", json={"inputs": [MLP_ROW]}).status_code == 200
        meta = c.get("/v2/models/mlp/versions/2.0")
        assert meta.status_code == 200 and meta.json()["versions"] == ["2.0"]
        assert c.post("/predictions/mlp/1.0", json={"inputs": [MLP_ROW]}).status_code == 404
    # The audit log tells the story: the version entered at 0%, the analysis moved it.
    actions = [(e["action"], e["who"]) for e in stack.audit()]
    assert actions[0][0] == "set_variant"
    assert "servegate rollout: mlp 2.0 (torchscript)" in stack.audit()[0]["reason"]
    assert [a for a, _ in actions[1:]] == ["canary_start", "canary_advance", "canary_promote"]


def test_a_diverging_version_rolls_back_and_the_route_is_exactly_as_before(
    stack: Stack, tmp_path: Path
) -> None:
    before = stack.route()
    before_file = yaml.safe_load(stack.config.read_text())["routes"]["mlp"]
    with load(stack) as traffic:
        time.sleep(2)
        result = stack.rollout("mlp", "--version", "2.1", "--grace", "2")
        time.sleep(2)
    assert result.returncode == 3, result.stdout + result.stderr
    counts = traffic.by_variant()
    print(f"\nrollback under {RATE:g} req/s: {counts}\n{result.stdout}")
    assert counts[("stable", "failed")] == 0 and counts[("-", "failed")] == 0
    assert counts[("canary", "ok")] > 0  # it did take traffic: the divergence is what failed
    assert "route restored exactly: yes" in result.stdout
    assert stack.route() == before
    assert yaml.safe_load(stack.config.read_text())["routes"]["mlp"] == before_file
    assert not stack.loaded("2.1") and stack.loaded("1.0")
    actions = [e["action"] for e in stack.audit()]
    assert actions[0] == "set_variant" and actions[-1] == "set_variant"
    assert "canary_rollback" in actions and "canary_promote" not in actions
    assert state(tmp_path)["phase"] == "rolled_back"


def test_a_version_failing_its_warm_up_is_refused_before_any_traffic_moves(
    stack: Stack, tmp_path: Path
) -> None:
    before = stack.config.read_bytes()
    with load(stack) as traffic:
        time.sleep(1)
        result = stack.rollout("mlp", "--version", "2.2")
        time.sleep(1)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed its warm-up" in result.stderr and "injected failure" in result.stderr
    assert traffic.failures() == {}
    assert set(traffic.by_variant()) == {("stable", "ok")}
    assert stack.config.read_bytes() == before and stack.audit() == []
    assert not stack.loaded("2.2") and stack.loaded("1.0")
    assert state(tmp_path)["phase"] == "refused"
    assert not (stack.ts.settings.staged_store / "mlp_torchscript.v2.2.mar").exists()


@pytest.mark.parametrize(
    ("version", "says"),
    [
        ("2.3", "fails its manifest check"),
        ("2.4", "failed its parity check (parity: max abs err 0.4)"),
    ],
)
def test_a_version_failing_its_manifest_or_parity_is_refused_before_anything_moves(
    stack: Stack, tmp_path: Path, version: str, says: str
) -> None:
    before = stack.config.read_bytes()
    with load(stack) as traffic:
        time.sleep(1)
        result = stack.rollout("mlp", "--version", version)
        time.sleep(1)
    assert result.returncode == 1, result.stdout + result.stderr
    assert says in result.stderr, result.stderr
    assert traffic.failures() == {}
    assert set(traffic.by_variant()) == {("stable", "ok")}
    assert stack.config.read_bytes() == before and stack.audit() == []
    assert not stack.loaded(version) and stack.loaded("1.0")
    assert not (stack.ts.settings.staged_store / f"mlp_torchscript.v{version}.mar").exists()


@pytest.mark.parametrize("stack", [{"interval_s": 30}], indirect=True)
def test_abort_from_another_shell_mid_analysis_restores_the_route(
    stack: Stack, tmp_path: Path
) -> None:
    before = stack.route()
    command = [
        str(Path(sys.executable).with_name("servegate")),
        "rollout",
        "mlp",
        "--version",
        "2.0",
        "--workdir",
        str(stack.ts.settings.workdir),
        "--admin-url",
        stack.gw.admin_url,
        "--token-file",
        str(stack.token_file),
    ]
    with load(stack) as traffic:
        time.sleep(1)
        rollout = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while (tmp_path / ".servegate/rollouts/mlp.json").is_file() is False or state(tmp_path)[
                "phase"
            ] != "analysing":
                assert time.monotonic() < deadline and rollout.poll() is None
                time.sleep(0.1)
            assert stack.route()["variants"][1]["weight"] == 30  # the canary takes traffic
            aborted = stack.rollout("abort", "mlp")
            out, _ = rollout.communicate(timeout=120)
        finally:
            rollout.kill()
        time.sleep(1)
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    assert rollout.returncode == 3, out
    assert "route restored exactly: yes" in out and "unloaded mlp_torchscript/2.0" in out
    assert traffic.failures() == {}
    assert stack.route() == before
    assert not stack.loaded("2.0") and stack.loaded("1.0")
    actions = [e["action"] for e in stack.audit()]
    assert actions[:2] == ["set_variant", "canary_start"] and actions[-1] == "set_variant"
    assert "canary_promote" not in actions
    assert state(tmp_path)["phase"] == "aborted"
