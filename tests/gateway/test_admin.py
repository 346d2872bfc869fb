"""Admin API and its CLI: token, If-Match, validation, persistence, audit, restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.support import TOKEN, fire, run_gateway, split_route, write_config

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mlp_config(tmp_path: Path, fake_backends: dict[str, Any]) -> Path:
    return write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": split_route(100, 0)})


def test_token_is_required(mlp_config: Path) -> None:
    with run_gateway(mlp_config) as gw, gw.admin() as a:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            for resp in (
                a.get("/admin/routes", headers=headers),
                a.get("/admin/routes/mlp", headers=headers),
                a.put(
                    "/admin/routes/mlp/weights",
                    headers={**headers, "If-Match": "x"},
                    json={"weights": {"stable": 0, "canary": 100}},
                ),
            ):
                assert resp.status_code == 401, resp.text
                assert set(resp.json()) == {"error"}
        assert a.get("/admin/routes", headers=gw.auth).status_code == 200
    assert "weight: 100" in mlp_config.read_text()


def test_admin_api_is_off_without_a_token(mlp_config: Path) -> None:
    with run_gateway(mlp_config, admin_token="") as gw, gw.admin() as a:
        assert a.get("/admin/routes", headers=gw.auth).status_code == 404
        assert a.get("/metrics").status_code == 200


def test_writes_need_the_current_version(mlp_config: Path) -> None:
    change = {"weights": {"stable": 50, "canary": 50}}
    with run_gateway(mlp_config) as gw, gw.admin() as a:
        version = a.get("/admin/routes/mlp", headers=gw.auth).headers["etag"]
        missing = a.put("/admin/routes/mlp/weights", json=change, headers=gw.auth)
        stale = a.put(
            "/admin/routes/mlp/weights",
            json=change,
            headers={**gw.auth, "If-Match": '"0123456789abcdef"'},
        )
        ok = a.put(
            "/admin/routes/mlp/weights", json=change, headers={**gw.auth, "If-Match": version}
        )
        replay = a.put(
            "/admin/routes/mlp/weights", json=change, headers={**gw.auth, "If-Match": version}
        )
    assert missing.status_code == 428
    assert stale.status_code == 412 and set(stale.json()) == {"error"}
    assert ok.status_code == 200, ok.text
    assert replay.status_code == 412  # the version moved on with the first write


@pytest.mark.parametrize(
    "weights",
    [
        {"stable": 90, "canary": 0},
        {"stable": 110, "canary": -10},
        {"stable": 89.5, "canary": 10.5},
        {"stable": 100},
        {"stable": 100, "canary": 0, "ghost": 0},
        {"stable": "100", "canary": 0},
    ],
)
def test_invalid_weights_are_refused(mlp_config: Path, weights: dict[str, Any]) -> None:
    before = mlp_config.read_bytes()
    with run_gateway(mlp_config) as gw, gw.admin() as a:
        version = a.get("/admin/routes", headers=gw.auth).headers["etag"]
        resp = a.put(
            "/admin/routes/mlp/weights",
            json={"weights": weights},
            headers={**gw.auth, "If-Match": version},
        )
        assert resp.status_code == 400, resp.text
        assert set(resp.json()) == {"error"}
        assert fire(f"{gw.url}/predictions/mlp", 10) == [(200, "stable")] * 10
    assert mlp_config.read_bytes() == before


def test_change_applies_persists_is_audited_and_survives_restart(
    mlp_config: Path, tmp_path: Path
) -> None:
    original = mlp_config.read_text()
    with run_gateway(mlp_config) as gw, gw.admin() as a:
        version = a.get("/admin/routes", headers=gw.auth).headers["etag"]
        resp = a.put(
            "/admin/routes/mlp/weights",
            json={"weights": {"stable": 0, "canary": 100}},
            headers={**gw.auth, "If-Match": version, "X-Servegate-Actor": "alice"},
        )
        assert resp.status_code == 200, resp.text
        assert fire(f"{gw.url}/predictions/mlp", 20) == [(200, "canary")] * 20  # at once
        audit_path = gw.settings.audit_path()
    saved = mlp_config.read_text()
    assert saved.startswith("# written by a test\n")  # comments survive
    assert saved == original.replace("weight: 100", "weight: @").replace(
        "weight: 0", "weight: 100"
    ).replace("weight: @", "weight: 0")
    [entry] = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert entry["who"] == "alice" and entry["route"] == "mlp"
    assert entry["old"] == {"stable": 100, "canary": 0}
    assert entry["new"] == {"stable": 0, "canary": 100}
    assert entry["version_before"] == version.strip('"') and entry["time"]
    with run_gateway(mlp_config) as gw, gw.admin() as a:
        route = a.get("/admin/routes/mlp", headers=gw.auth).json()["route"]
        assert [v["weight"] for v in route["variants"]] == [0, 100]
        assert fire(f"{gw.url}/predictions/mlp", 10) == [(200, "canary")] * 10


@pytest.mark.slow
def test_cli_routes_and_canary_set(mlp_config: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "admin_token"
    token_file.write_text(TOKEN + "\n")
    with run_gateway(mlp_config) as gw:
        common = ["--admin-url", gw.admin_url, "--token-file", str(token_file)]
        env = {k: v for k, v in os.environ.items() if k != "SERVEGATE_GATEWAY_ADMIN_TOKEN"}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "servegate.cli", *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

        shown = cli("routes", *common)
        assert shown.returncode == 0, shown.stderr
        assert "mlp: stable=100" in shown.stdout and "canary=0" in shown.stdout
        changed = cli("canary", "set", "mlp", "stable=80", "canary=20", *common)
        assert changed.returncode == 0, changed.stderr
        assert "stable=80, canary=20" in changed.stdout
        refused = cli("canary", "set", "mlp", "stable=80", "canary=30", *common)
        assert refused.returncode == 1 and "sum to 110" in refused.stderr
        wrong_file = tmp_path / "wrong_token"
        wrong_file.write_text("not-the-token\n")
        wrong = cli("routes", "--admin-url", gw.admin_url, "--token-file", str(wrong_file))
        assert wrong.returncode == 1 and "401" in wrong.stderr
    assert "weight: 80" in mlp_config.read_text() and "weight: 20" in mlp_config.read_text()


def test_read_only_config_is_a_clear_409_and_nothing_changes(
    mlp_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only mount (ConfigMap, compose `:ro`) cannot be made here without mount rights, so
    # the write fails the way the OS fails it there: EROFS from the atomic write.
    import errno

    from gateway.config import changes

    def read_only(path: Path, data: bytes) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(changes, "atomic_write", read_only)
    before = mlp_config.read_text()
    with run_gateway(mlp_config) as gw, gw.admin() as a:
        version = a.get("/admin/routes/mlp", headers=gw.auth).headers["etag"]
        resp = a.put(
            "/admin/routes/mlp/weights",
            json={"weights": {"stable": 0, "canary": 100}},
            headers={**gw.auth, "If-Match": version},
        )
        after = a.get("/admin/routes/mlp", headers=gw.auth).json()
    assert resp.status_code == 409
    assert "Read-only file system" in resp.json()["error"]
    assert "change it at its source" in resp.json()["error"]
    assert {v["name"]: v["weight"] for v in after["route"]["variants"]} == {
        "stable": 100,
        "canary": 0,
    }
    assert mlp_config.read_text() == before
