"""``servegate gateway start`` says "started" only of a gateway that answers: one that exits on
its config or its port is reported with the gateway's own error and a non-zero exit."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_ports

# Gateway processes started, drained and restarted: seconds each (tests/conftest.py).
pytestmark = pytest.mark.slow

GOOD = {
    "backends": {"ts": {"inference_url": "http://127.0.0.1:9"}},
    "routes": {"m": {"variants": [{"name": "a", "backend": "ts", "model": "mlp", "weight": 100}]}},
}


def servegate(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "servegate.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def start(cwd: Path, config: Path, port: int | None = None) -> subprocess.CompletedProcess[str]:
    data, admin, grpc = free_ports(3)
    ports = ["--port", str(port or data), "--admin-port", str(admin), "--grpc-port", str(grpc)]
    return servegate(cwd, "gateway", "start", "--config", str(config), *ports)


def test_an_invalid_config_is_reported_and_exits_non_zero(tmp_path: Path) -> None:
    bad = yaml.safe_load(yaml.safe_dump(GOOD))
    bad["routes"]["m"]["variants"][0]["weight"] = 90
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(bad))
    result = start(tmp_path, config)
    assert result.returncode == 1, result.stderr
    assert "gateway started" not in result.stderr
    assert "the gateway exited at start" in result.stderr
    assert "variant weights must sum to 100, they sum to 90" in result.stderr


def test_a_gateway_that_dies_after_loading_its_config_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(GOOD))
    with socket.socket() as taken:  # the data-plane port is held by someone else
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = start(tmp_path, config, port=taken.getsockname()[1])
    assert result.returncode == 1, result.stderr
    assert "gateway started" not in result.stderr
    assert "address already in use" in result.stderr.lower()


def test_a_good_gateway_is_started_and_answers(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(GOOD))
    try:
        result = start(tmp_path, config)
        assert result.returncode == 0, result.stderr
        assert "gateway started (pid" in result.stderr
    finally:
        stopped = servegate(tmp_path, "gateway", "stop")
    assert stopped.returncode == 0 and "gateway stopped" in stopped.stderr
