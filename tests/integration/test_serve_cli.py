"""`servegate serve` / `servegate stop` as a user runs them, on a real TorchServe."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from servegate.torchserve.keys import KeyFile
from servegate.torchserve.settings import Ports
from tests.conftest import fresh_ports
from tests.support.tsclient import TorchServeClient

pytestmark = pytest.mark.torchserve  # runs `servegate serve` in a subprocess

SERVEGATE = str(Path(sys.executable).with_name("servegate"))


def port_args(ports: Ports) -> list[str]:
    return [
        a
        for name, v in ports.model_dump().items()
        for a in (f"--{name.replace('_', '-')}-port", str(v))
    ]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SERVEGATE, *args], capture_output=True, text=True, timeout=400, check=False
    )


def test_serve_then_stop_only_this_instance(
    model_store: Path, tmp_path: Path, torchserve: TorchServeClient
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    shutil.copy2(model_store / "mlp_onnx.mar", store)
    workdir, ports = tmp_path / "ts", fresh_ports()
    started = run("serve", "--store", str(store), "--workdir", str(workdir), *port_args(ports))
    try:
        assert started.returncode == 0, started.stderr
        assert "TorchServe is ready: mlp_onnx" in started.stdout
        assert f"key file    {workdir / 'key_file.json'}" in started.stdout

        config = (workdir / "config.properties").read_text()
        assert f"inference_address=http://127.0.0.1:{ports.inference}" in config
        assert "disable_token_authorization=false" in config
        assert "enable_model_api=false" in config
        assert "metrics_mode=prometheus" in config

        keys = KeyFile.read(workdir / "key_file.json")
        base = f"http://127.0.0.1:{ports.inference}"
        auth = {"Authorization": f"Bearer {keys.inference.key}"}
        ok = httpx.post(f"{base}/predictions/mlp_onnx", json={"inputs": [[0.0] * 16]}, headers=auth)
        assert ok.status_code == 200
        assert (
            httpx.post(f"{base}/predictions/mlp_onnx", json={"inputs": [[0.0] * 16]}).status_code
            == 400
        )
        mgmt = f"http://127.0.0.1:{ports.management}"
        register = httpx.post(
            f"{mgmt}/models?url=mlp_onnx.mar",
            headers={"Authorization": f"Bearer {keys.management.key}"},
        )
        assert register.status_code >= 400  # model register API is off
        metrics = httpx.get(f"http://127.0.0.1:{ports.metrics}/metrics")
        assert metrics.status_code == 200
        assert "ts_inference_requests_total" in metrics.text
    finally:
        stopped = run("stop", "--workdir", str(workdir))
    assert stopped.returncode == 0
    assert "stopped" in stopped.stderr
    with_error = httpx.Client(timeout=2)
    try:
        with_error.get(f"http://127.0.0.1:{ports.inference}/ping")
        raise AssertionError("TorchServe still answers after stop")
    except httpx.ConnectError:
        pass
    # The session's own TorchServe was left alone.
    assert torchserve.predict("mlp_onnx", json={"inputs": [[0.0] * 16]}).status_code == 200


def tamper(mar: Path, member: str) -> None:
    with zipfile.ZipFile(mar) as src:
        items = {info.filename: src.read(info) for info in src.infolist()}
    data = bytearray(items[member])
    data[len(data) // 2] ^= 0xFF
    items[member] = bytes(data)
    with zipfile.ZipFile(mar, "w") as dst:
        for name, content in items.items():
            dst.writestr(name, content)


def test_tampered_artifact_is_refused_at_load(model_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    shutil.copy2(model_store / "mlp_torchscript.mar", store)
    tamper(store / "mlp_torchscript.mar", "model.torchscript.pt")
    workdir = tmp_path / "ts"
    result = run(
        "serve",
        "--store",
        str(store),
        "--workdir",
        str(workdir),
        *port_args(fresh_ports()),
        "--ready-timeout",
        "120",
    )
    assert result.returncode == 1
    assert f"mlp_torchscript.mar (in {store}) failed to load; TorchServe says:" in result.stderr
    assert "refusing to load model.torchscript.pt: SHA-256 mismatch" in result.stderr
    # It cleaned up after itself: nothing left running from that workdir.
    assert not (workdir / "tmp" / ".model_server.pid").exists()
