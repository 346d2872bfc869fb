"""A multi-process gateway (``servegate gateway run --workers 3``) against the session's real
TorchServe: the processes share the HTTP and gRPC ports, /metrics and the status page count
every process's traffic, an admin change reaches every process, a killed worker is replaced,
SIGTERM stops them all, and a restart hands every process's socket over."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest

from tests.conftest import free_ports
from tests.gateway.support import (
    MLP_ROW,
    TOKEN,
    fire,
    spawn_gateway,
    split_route,
    wait_for,
    write_config,
)
from tests.support.steady_load import HttpLoad

pytestmark = pytest.mark.integration
WORKERS = 3


class MultiProcessGateway:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, admin: int, grpc_port: int):
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self.admin_url = f"http://127.0.0.1:{admin}"
        self.grpc_address = f"127.0.0.1:{grpc_port}"

    def workers(self) -> list[psutil.Process]:
        children = psutil.Process(self.proc.pid).children()
        return [c for c in children if "spawn_main" in " ".join(c.cmdline())]

    def served(self, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.admin_url}/metrics", timeout=10).text
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "servegate_requests_total"
            and all(s.labels.get(k) == v for k, v in labels.items())
        )


@pytest.fixture
def gateway(tmp_path: Path, backends: dict[str, Any]) -> Iterator[MultiProcessGateway]:
    config = write_config(tmp_path / "gateway.yaml", backends, {"mlp": split_route(100, 0)})
    token = tmp_path / "token"
    token.write_text(TOKEN)
    port, admin, grpc_port = free_ports(3)
    argv = [sys.executable, "-m", "servegate.cli", "gateway", "run", "--config", str(config)]
    argv += ["--port", str(port), "--admin-port", str(admin), "--grpc-port", str(grpc_port)]
    argv += ["--workers", str(WORKERS), "--token-file", str(token)]
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    gw = MultiProcessGateway(proc, port, admin, grpc_port)
    try:
        wait_for(lambda: _ready(gw) and len(gw.workers()) == WORKERS - 1, "workers ready", 60)
        yield gw
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        log.close()


def _ready(gw: MultiProcessGateway) -> bool:
    assert gw.proc.poll() is None, "the gateway exited"
    try:
        return httpx.get(f"{gw.admin_url}/status.json", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_workers_share_the_ports_and_every_number(gateway: MultiProcessGateway) -> None:
    processes = [psutil.Process(gateway.proc.pid), *gateway.workers()]
    before = [p.cpu_times().user + p.cpu_times().system for p in processes]
    answers = fire(f"{gateway.url}/predictions/mlp", 600, concurrency=32)
    assert answers == [(200, "stable")] * 600
    spent = [
        p.cpu_times().user + p.cpu_times().system - b
        for p, b in zip(processes, before, strict=True)
    ]
    assert all(s > 0.05 for s in spent), f"a process served nothing: {spent}"
    # /metrics sums every process; so does the status page (its 1 s stats tick).
    assert gateway.served(route="mlp", variant="stable", code="200") == 600
    wait_for(lambda: _status_total(gateway) == 600, "the status page's total")
    # gRPC is on the shared port too.
    from gateway.grpc.stubs import grpc_predict_v2_pb2 as pb
    from gateway.grpc.stubs import grpc_predict_v2_pb2_grpc as pb_grpc

    with grpc.insecure_channel(gateway.grpc_address) as channel:
        ready = pb_grpc.GRPCInferenceServiceStub(channel).ServerReady(pb.ServerReadyRequest())
    assert ready.ready


def test_an_admin_change_reaches_every_worker(gateway: MultiProcessGateway) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    route = httpx.get(f"{gateway.admin_url}/admin/routes/mlp", headers=auth).json()
    resp = httpx.put(
        f"{gateway.admin_url}/admin/routes/mlp/weights",
        json={"weights": {"stable": 0, "canary": 100}},
        headers={**auth, "If-Match": f'"{route["version"]}"'},
    )
    assert resp.status_code == 200, resp.text
    # Workers pick the file up on their next reload tick (0.5 s by default).
    wait_for(
        lambda: (
            fire(f"{gateway.url}/predictions/mlp", 60, concurrency=32) == [(200, "canary")] * 60
        ),
        "every worker serving the new weights",
    )
    reloads = httpx.get(f"{gateway.admin_url}/metrics").text
    assert 'servegate_config_reloads_total{result="applied"}' not in reloads or (
        'servegate_config_reloads_total{result="applied"} 0.0' in reloads
    )  # the primary applied it itself; workers' reloads are not counted N times


def test_a_killed_worker_is_replaced_and_sigterm_stops_all(
    gateway: MultiProcessGateway,
) -> None:
    victim = gateway.workers()[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    wait_for(
        lambda: (
            len(gateway.workers()) == WORKERS - 1
            and victim.pid not in [w.pid for w in gateway.workers()]
        ),
        "a replacement worker",
    )
    assert fire(f"{gateway.url}/predictions/mlp", 100, concurrency=16) == [(200, "stable")] * 100
    workers = gateway.workers()
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(60) == 0
    time.sleep(0.5)
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


def _status_total(gw: MultiProcessGateway) -> int:
    routes = httpx.get(f"{gw.admin_url}/status.json", timeout=10).json()["routes"]
    mlp = next(r for r in routes if r["name"] == "mlp")
    return int(sum(v["total"] for v in mlp["variants"]))


def test_a_restart_with_workers_under_load_fails_no_request(
    tmp_path: Path, backends: dict[str, Any]
) -> None:
    """Every data socket of the old gateway's processes is handed over: 20 requests a second
    on new connections (each lands on one of the processes' sockets) and 20 a second on
    kept-alive ones go on through the restart without a failure (issue 14, item 8)."""
    config = write_config(tmp_path / "gateway.yaml", backends, {"mlp": split_route(100, 0)})
    old = spawn_gateway(config, tmp_path, "--workers", str(WORKERS))
    ports = (old.port, old.admin_port, old.grpc_port)
    body = {"inputs": [MLP_ROW]}
    url = f"{old.url}/predictions/mlp"
    loads = [
        HttpLoad(url, 20, lambda i: body, fresh_connections=True),
        HttpLoad(url, 20, lambda i: body),
    ]
    new = None
    try:
        for load in loads:
            load.__enter__()
        wait_for(lambda: loads[0].answered >= 20, "traffic before the restart")
        new = spawn_gateway(config, tmp_path, "--workers", str(WORKERS), "--take-over", ports=ports)
        assert old.proc.wait(60) == 0
        after = loads[0].answered
        wait_for(lambda: loads[0].answered >= after + 20, "traffic after the old gateway left")
    finally:
        for load in loads:
            load.stop()
        for gw in (old, new):
            if gw is not None and gw.proc.poll() is None:
                gw.proc.send_signal(signal.SIGTERM)
                gw.proc.wait(60)
    for load in loads:
        assert load.answered > 40 and not load.failures(), load.failures()
    log = old.log_text()
    assert "handed 4 listening sockets" in log  # 3 data sockets and the admin one
    # Its workers were asked to drain once: a second SIGTERM would have cut their drain short
    # (the race this run lost requests to, 3 times in 11 under load, before 2026-12-01).
    assert "again: cutting the drain short" not in log and "cutting" not in log, log
    assert log.index("draining (replaced by pid") < log.index("drained in")
