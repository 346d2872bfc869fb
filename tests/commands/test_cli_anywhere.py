"""The CLI as a user runs it after `make demo`: from any directory, found by its full path,
with help that says what it does. A real gateway answers the admin calls (its TorchServe
backend need not run for them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.gateway.support import TOKEN, run_gateway, variant, write_config

SERVEGATE = str(Path(sys.executable).with_name("servegate"))


def servegate(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SERVEGATE_GATEWAY_ADMIN_TOKEN", "SERVEGATE_HOME", "SERVEGATE_ADMIN_URL")
    }
    return subprocess.run(
        [SERVEGATE, *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def project(tmp_path: Path) -> Path:
    """A directory where `make demo` ran: its .servegate/ holds the admin token."""
    root = tmp_path / "checkout"
    (root / ".servegate").mkdir(parents=True)
    (root / ".servegate" / "admin_token").write_text(TOKEN + "\n")
    backend = {"kind": "torchserve", "inference_url": "http://127.0.0.1:9"}
    route = {"variants": [variant("stable", "m_torchscript", 90), variant("canary", "m_onnx", 10)]}
    write_config(root / "gateway.yaml", {"ts": backend}, {"minilm": route})
    return root


def test_routes_from_a_subdirectory_and_from_elsewhere_with_servegate_home(
    tmp_path: Path,
) -> None:
    root = project(tmp_path)
    deep = root / "examples" / "deeper"
    deep.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with run_gateway(root / "gateway.yaml") as gw:
        below = servegate("routes", "--admin-url", gw.admin_url, cwd=deep)
        assert below.returncode == 0, below.stderr
        # The backend is a dead port: both variants are listed, marked not ready (issue 13).
        assert "minilm: stable=90 (m_torchscript/1.0) NOT READY" in below.stdout
        assert "canary=10 (m_onnx/1.0) NOT READY" in below.stdout
        away = servegate(
            "routes", "--admin-url", gw.admin_url, cwd=elsewhere, SERVEGATE_HOME=str(root)
        )
        assert away.returncode == 0, away.stderr
        assert "minilm: stable=90" in away.stdout


def test_missing_token_says_where_it_looked_and_how_to_point_at_it(tmp_path: Path) -> None:
    result = servegate("routes", cwd=tmp_path, SERVEGATE_HOME=str(tmp_path))
    assert result.returncode != 0
    assert f"no admin token in {tmp_path}/.servegate/admin_token" in result.stderr
    assert "set SERVEGATE_HOME to it" in result.stderr


def test_gateway_down_gives_a_hint(tmp_path: Path) -> None:
    root = project(tmp_path)
    result = servegate("routes", "--admin-url", "http://127.0.0.1:9", cwd=root)
    assert result.returncode == 1
    assert "cannot reach the admin API at http://127.0.0.1:9 (ConnectError)" in result.stderr
    assert "is the gateway running?" in result.stderr


def test_help_version_and_export_defaults(tmp_path: Path) -> None:
    top = servegate("--help", cwd=tmp_path)
    assert top.returncode == 0
    assert "Export PyTorch models to verified archives" in top.stdout
    assert "Each subcommand lives" not in top.stdout  # the module docstring is for developers
    version = servegate("--version", cwd=tmp_path)
    assert version.returncode == 0
    assert version.stdout.startswith("servegate 0.")
    serve = servegate("serve", "--help", cwd=tmp_path)
    assert "(default: model_store)" in serve.stdout
    assert "(default: 8080)" in serve.stdout
