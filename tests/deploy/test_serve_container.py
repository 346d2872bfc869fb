"""How the containers run TorchServe: `servegate serve --foreground --host 0.0.0.0`, with the
management API kept on loopback and (Kubernetes) token authorization off."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from servegate.torchserve.process import TorchServe
from servegate.torchserve.settings import Ports, TorchServeSettings

pytestmark = pytest.mark.integration


def test_wide_bind_keeps_management_on_loopback() -> None:
    s = TorchServeSettings(store=Path("."), workdir=Path("w"), host="0.0.0.0", token_auth=False)
    props = dict(line.split("=", 1) for line in s.properties().splitlines())
    assert props["inference_address"] == "http://0.0.0.0:8080"
    assert props["metrics_address"] == "http://0.0.0.0:8082"
    assert props["grpc_inference_address"] == "0.0.0.0"
    assert props["management_address"] == "http://127.0.0.1:8081"
    assert props["grpc_management_address"] == "127.0.0.1"
    assert props["disable_token_authorization"] == "true"
    assert (
        "disable_token_authorization=false"
        in TorchServeSettings(store=Path("."), workdir=Path("w")).properties()
    )


def _non_loopback_ipv4() -> str:
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family.name == "AF_INET" and not a.address.startswith("127."):
                return str(a.address)
    raise AssertionError("this machine has no non-loopback IPv4 address to test the bind with")


def _wait_ready(proc: subprocess.Popen[str], url: str, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"servegate serve exited with {proc.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} not ready in {timeout_s} s")


@pytest.mark.torchserve  # `servegate serve --foreground` in a subprocess
def test_foreground_serve_as_a_container_runs_it(model_store: Path, tmp_path: Path) -> None:
    ports = Ports.ephemeral()
    argv = [
        sys.executable,
        "-m",
        "servegate.cli",
        "serve",
        "--foreground",
        "--store",
        str(model_store),
        "--workdir",
        str(tmp_path / "ts"),
        "--models",
        "mlp_torchscript",
        "--host",
        "0.0.0.0",
        "--no-token-auth",
    ]
    for name, port in ports.model_dump().items():
        argv += [f"--{name.replace('_', '-')}-port", str(port)]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_ready(proc, f"http://127.0.0.1:{ports.inference}/ping")  # no token needed
        ip = _non_loopback_ipv4()
        assert httpx.get(f"http://{ip}:{ports.inference}/ping", timeout=5).status_code == 200
        assert httpx.get(f"http://{ip}:{ports.metrics}/metrics", timeout=5).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{ip}:{ports.management}/models", timeout=5)
        assert httpx.get(f"http://127.0.0.1:{ports.management}/models", timeout=5).is_success
        assert proc.poll() is None, "--foreground must stay attached"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0, out
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{ports.inference}/ping", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        TorchServe(TorchServeSettings(store=model_store, workdir=tmp_path / "ts")).stop()
