"""A real gateway (uvicorn, both listeners) running in a thread or in its own process, and
config helpers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway import pidfile
from gateway.server import GatewayServer
from gateway.settings import GatewaySettings, load_settings
from tests.conftest import free_ports
from tests.support.tsclient import TorchServeClient

TOKEN = "test-admin-token"
MLP_ROW = [float(i) / 16 for i in range(16)]


def ts_backend(ts: TorchServeClient, **over: Any) -> dict[str, Any]:
    s = ts.settings
    return {
        "kind": "torchserve",
        "inference_url": s.url("inference"),
        "grpc_address": f"{s.host}:{s.ports.grpc_inference}",
        "metrics_url": s.url("metrics"),
        "key_file": str(s.key_file),
        "model_store": str(s.store),
        **over,
    }


def variant(name: str, model: str, weight: int, backend: str = "ts", **over: Any) -> dict[str, Any]:
    return {
        "name": name,
        "backend": backend,
        "model": model,
        "version": "1.0",
        "weight": weight,
        **over,
    }


def split_route(stable: int, canary: int, **over: Any) -> dict[str, Any]:
    """mlp route: stable = TorchScript, canary = ONNX."""
    return {
        "variants": [
            variant("stable", "mlp_torchscript", stable),
            variant("canary", "mlp_onnx", canary),
        ],
        **over,
    }


def write_config(path: Path, backends: dict[str, Any], routes: dict[str, Any]) -> Path:
    path.write_text(
        "# written by a test\n" + yaml.safe_dump({"backends": backends, "routes": routes})
    )
    return path


@dataclass
class RunningGateway:
    settings: GatewaySettings
    server: GatewayServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    @property
    def grpc_address(self) -> str:
        return f"{self.settings.grpc_host}:{self.settings.grpc_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.settings.admin_host}:{self.settings.admin_port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.admin_url, timeout=30)

    def metric(self, name: str, **labels: str) -> float:
        """The value of one series on /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.admin_url}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return 0.0

    def stop(self) -> None:
        self.server.request_stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "gateway did not stop"


@contextmanager
def run_gateway(config: Path, **overrides: Any) -> Iterator[RunningGateway]:
    port, admin_port, grpc_port = free_ports(3)
    options = {
        "admin_token": TOKEN,
        "reload_interval_s": 0.1,
        "scrape_interval_s": 0.5,
        **overrides,
    }
    settings = load_settings(
        config=config, port=port, admin_port=admin_port, grpc_port=grpc_port, **options
    )
    server = GatewayServer(settings)
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(server.serve())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=main, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert not errors, errors
        assert thread.is_alive() and time.monotonic() < deadline, "gateway did not start"
        time.sleep(0.02)
    running = RunningGateway(settings, server, thread)
    try:
        yield running
    finally:
        running.stop()


def wait_for(predicate: Any, what: str, timeout_s: float = 30.0) -> None:
    """Poll until ``predicate()`` is true (a liveness guard, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def fire(
    url: str,
    n: int,
    headers_for: Any = None,
    body: Any = None,
    concurrency: int = 16,
) -> list[tuple[int, str | None]]:
    """Send ``n`` POSTs concurrently; (status, serving variant) for each, in order."""
    payload = body if body is not None else {"inputs": [MLP_ROW]}

    async def main() -> list[tuple[int, str | None]]:
        sem = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:

            async def one(i: int) -> tuple[int, str | None]:
                headers = headers_for(i) if headers_for else {}
                async with sem:
                    resp = await client.post(url, json=payload, headers=headers)
                return resp.status_code, resp.headers.get("x-servegate-variant")

            return list(await asyncio.gather(*(one(i) for i in range(n))))

    return asyncio.run(main())


def post_all(
    url: str, bodies: list[Any], headers: dict[str, str] | None = None
) -> list[httpx.Response]:
    """Every body POSTed at once (a connection each; bytes as they are, anything else as
    JSON); the answers in order."""

    async def main() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(bodies))
        async with httpx.AsyncClient(timeout=60, limits=limits, headers=headers) as client:
            posts = (
                client.post(url, content=b) if isinstance(b, bytes) else client.post(url, json=b)
                for b in bodies
            )
            return list(await asyncio.gather(*posts))

    return asyncio.run(main())


@dataclass
class GatewayProcess:
    """``servegate gateway run`` in its own process (signals, exit codes, handover are real)."""

    proc: subprocess.Popen[bytes]
    port: int
    admin_port: int
    grpc_port: int
    log: Path
    pid_file: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_draining(self) -> None:
        wait_for(lambda: "draining (" in self.log_text(), "the gateway to start draining")


def spawn_gateway(
    config: Path,
    workdir: Path,
    *extra: str,
    ports: tuple[int, int, int] | None = None,
    env: dict[str, str] | None = None,
) -> GatewayProcess:
    """A gateway process with its pid file and control socket in ``workdir``, once it serves
    (it writes its pid file then); ``extra``: more ``gateway run`` arguments, ``env``: more
    environment (``SERVEGATE_GATEWAY_*`` settings)."""
    port, admin_port, grpc_port = ports or free_ports(3)
    pid_file = workdir / "gateway.pid"
    log = workdir / "gateway.log"
    argv = [sys.executable, "-m", "servegate.cli", "gateway", "run", "--config", str(config)]
    argv += ["--port", str(port), "--admin-port", str(admin_port), "--grpc-port", str(grpc_port)]
    argv += ["--pid-file", str(pid_file), "--control-socket", str(workdir / "gateway.sock")]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*argv, *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    gw = GatewayProcess(proc, port, admin_port, grpc_port, log, pid_file)

    def serving() -> bool:
        assert proc.poll() is None, f"the gateway exited: {gw.log_text()}"
        return pidfile.read(pid_file) == proc.pid

    wait_for(serving, "the gateway to serve", 60)
    return gw
