"""``servegate gateway restart`` loses nothing (issue 14, item 8): under steady load (20 HTTP
requests a second on kept-alive connections and 20 on a new connection each, some of them in
flight at every moment) a restart fails no request; the new
gateway owns the config from then on; a restart with a bad config leaves the old gateway serving;
and ``start`` while a stopped gateway still drains is not "already running".

Real processes through the real CLI, in front of a real HTTP backend written for the test
(``tests/support/stub_backend.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from gateway import pidfile
from servegate.ports import free_ports
from tests.gateway.support import TOKEN, fire, variant, wait_for, write_config
from tests.support.steady_load import HttpLoad
from tests.support.stub_backend import StubBackend, stub_backend

# Gateway processes started, drained and restarted: seconds each (tests/conftest.py).
pytestmark = pytest.mark.slow

RATE = 20.0
IN_FLIGHT = {"sleep": 0.3}  # each request takes a while: some are in flight at any moment


class Cli:
    """The `servegate` CLI run from ``cwd`` (its state in ``cwd/.servegate``), on fixed ports."""

    def __init__(self, cwd: Path, config: Path) -> None:
        self.cwd = cwd
        self.config = config
        self.port, self.admin_port, self.grpc_port = free_ports(3)
        self.token = cwd / "token"
        self.token.write_text(TOKEN)

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "servegate.cli", *args],
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def gateway(self, action: str, *extra: str) -> subprocess.CompletedProcess[str]:
        ports = ["--port", str(self.port), "--admin-port", str(self.admin_port)]
        ports += ["--grpc-port", str(self.grpc_port), "--token-file", str(self.token)]
        return self("gateway", action, "--config", str(self.config), *ports, *extra)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pid(self) -> int | None:
        return pidfile.read(self.cwd / ".servegate" / "gateway.pid")


@pytest.fixture
def stub() -> Iterator[StubBackend]:
    with stub_backend() as backend:
        yield backend


@pytest.fixture
def cli(tmp_path: Path, stub: StubBackend) -> Iterator[Cli]:
    route = {
        "variants": [variant("a", "m", 100, backend="stub"), variant("b", "m", 0, backend="stub")]
    }
    config = write_config(tmp_path / "gateway.yaml", {"stub": stub.config()}, {"m": route})
    runner = Cli(tmp_path, config)
    yield runner
    runner("gateway", "stop")
    stub.release()


def exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_restart_under_load_fails_no_request(cli: Cli) -> None:
    # With --workers: tests/gateway/test_workers.py (against a real TorchServe).
    started = cli.gateway("start")
    assert started.returncode == 0, started.stderr
    old = cli.pid()
    assert old is not None
    url = f"{cli.url}/predictions/m"
    loads = [
        HttpLoad(url, RATE, lambda i: {**IN_FLIGHT, "n": i}),
        HttpLoad(url, RATE, lambda i: {"n": i}, fresh_connections=True),
    ]
    for load in loads:
        load.__enter__()
    try:
        wait_for(lambda: loads[0].answered >= 20, "traffic before the restart")
        restarted = cli.gateway("restart")
        assert restarted.returncode == 0, restarted.stderr
        new = cli.pid()
        assert new is not None and new != old
        wait_for(lambda: exited(old), "the old gateway to drain and exit")
        after = loads[0].answered
        wait_for(lambda: loads[0].answered >= after + 20, "traffic after the old gateway left")
    finally:
        for load in loads:
            load.stop()
    for load in loads:
        assert load.answered > 40 and not load.failures(), load.failures()
    assert psutil.Process(new).is_running()


def test_a_bad_config_keeps_the_old_gateway_and_a_good_one_hands_over_the_config(
    cli: Cli,
) -> None:
    assert cli.gateway("start").returncode == 0
    old = cli.pid()
    good = cli.config.read_text()
    cli.config.write_text(good.replace("weight: 100", "weight: 90"))
    restarted = cli.gateway("restart")
    assert restarted.returncode == 1
    assert "variant weights must sum to 100, they sum to 90" in restarted.stderr
    assert cli.pid() == old
    assert fire(f"{cli.url}/predictions/m", 5, body={"n": 0}) == [(200, "a")] * 5

    cli.config.write_text(good)
    assert cli.gateway("restart").returncode == 0
    assert cli.pid() not in (None, old)
    # The new gateway owns the config: an admin change is applied and audited once (the old
    # one stopped watching the file before the new one started to).
    auth = {"Authorization": f"Bearer {TOKEN}"}
    admin = f"http://127.0.0.1:{cli.admin_port}"
    version = httpx.get(f"{admin}/admin/routes/m", headers=auth).json()["version"]
    resp = httpx.put(
        f"{admin}/admin/routes/m/weights",
        json={"weights": {"a": 0, "b": 100}},
        headers={**auth, "If-Match": f'"{version}"'},
    )
    assert resp.status_code == 200, resp.text
    assert fire(f"{cli.url}/predictions/m", 20, body={"n": 0}) == [(200, "b")] * 20
    audit = cli.config.with_name("gateway.yaml.audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["action"] for line in audit] == ["set_weights"]


def test_start_while_the_stopped_gateway_drains_is_not_already_running(
    cli: Cli, stub: StubBackend
) -> None:
    assert cli.gateway("start").returncode == 0
    old = cli.pid()
    assert old is not None
    sender_answers: list[int] = []
    with httpx.Client(timeout=60) as client:
        sender = threading.Thread(
            target=lambda: sender_answers.append(
                client.post(f"{cli.url}/predictions/m", json={"hold": True}).status_code
            )
        )
        sender.start()
        wait_for(lambda: stub.holding == 1, "a request in flight")
        stop = subprocess.Popen(
            [sys.executable, "-m", "servegate.cli", "gateway", "stop"],
            cwd=cli.cwd,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: cli.pid() is None, "the old gateway to give up its pid file")
        assert not exited(old)  # still draining
        started = cli.gateway("start")
        assert started.returncode == 0, started.stderr
        assert cli.pid() not in (None, old)
        assert fire(f"{cli.url}/predictions/m", 5, body={"n": 0}) == [(200, "a")] * 5
        stub.release()
        sender.join(60)
    assert sender_answers == [200]
    assert stop.wait(60) == 0 and "gateway stopped" in (stop.stderr.read() if stop.stderr else "")
    assert exited(old)
