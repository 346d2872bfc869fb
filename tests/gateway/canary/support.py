"""Canary-test plumbing: archives with injected faults, steady background traffic, a real
Prometheus server, and reading the gateway's analysis status."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import free_ports
from tests.gateway.support import MLP_ROW, RunningGateway
from tests.support import faulty_handler
from tests.support.archives import repackage

# Small batches with a short wait: a slow canary still answers ~40 req/s, a fast one at once.
TEST_SERVING = {
    "minWorkers": 1,
    "maxWorkers": 1,
    "batchSize": 8,
    "maxBatchDelay": 10,
    "responseTimeout": 120,
}


def faulty_archive(
    source: Path,
    out: Path,
    name: str,
    faults: dict[str, Any],
    serving: dict[str, Any] | None = None,
    *,
    version: str = "1.0",
) -> Path:
    """Repackage ``source`` (a servegate .mar) as ``name`` at ``version`` with ``faults``
    injected (``serving`` overrides entries of ``TEST_SERVING``), sealed and pinned like an
    export."""
    return repackage(
        source,
        out,
        name,
        handler=Path(faulty_handler.__file__),
        extra={"faults.json": json.dumps(faults)},
        model_config=yaml.safe_dump({**TEST_SERVING, **(serving or {})}),
        version=version,
    )


class Traffic:
    """Requests at a steady rate from a background thread until stopped; counts answers."""

    def __init__(
        self,
        url: str,
        *,
        rate: float = 80.0,
        workers: int = 8,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.rate = rate
        self.workers = workers
        self.body = body if body is not None else {"inputs": [MLP_ROW]}
        self.headers = headers or {}
        self.answers: Counter[tuple[int, str | None]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    @property
    def total(self) -> int:
        return sum(self.answers.values())

    async def _main(self) -> None:
        pause = self.workers / self.rate
        async with httpx.AsyncClient(timeout=60) as client:

            async def worker() -> None:
                while not self._stop.is_set():
                    started = time.monotonic()
                    try:
                        resp = await client.post(self.url, json=self.body, headers=self.headers)
                        key = (resp.status_code, resp.headers.get("x-servegate-variant"))
                    except httpx.HTTPError:
                        key = (0, None)
                    self.answers[key] += 1
                    await asyncio.sleep(max(0.0, pause - (time.monotonic() - started)))

            await asyncio.gather(*(worker() for _ in range(self.workers)))


def analysis(gw: RunningGateway, route: str) -> dict[str, Any]:
    with gw.admin() as admin:
        resp = admin.get(f"/admin/canary/{route}", headers=gw.auth)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def act(gw: RunningGateway, route: str, action: str) -> httpx.Response:
    with gw.admin() as admin:
        return admin.post(f"/admin/canary/{route}/{action}", headers=gw.auth)


def wait_phase(
    gw: RunningGateway, route: str, phases: tuple[str, ...], timeout_s: float = 90.0
) -> dict[str, Any]:
    """Poll the analysis until it reaches one of ``phases`` (a liveness guard, not a timing
    assertion); the final status is returned for the test to judge."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = analysis(gw, route)
        if body["phase"] in phases:
            return body
        assert time.monotonic() < deadline, f"{route} stayed {body['phase']}: {body}"
        time.sleep(0.2)


def wait_finished(gw: RunningGateway, route: str, timeout_s: float = 90.0) -> dict[str, Any]:
    """Poll until the run ends: the route is idle again and its ending is the last run (a
    liveness guard, not a timing assertion). The status with its last run's fields on top
    (outcome, reason, failed checks, last checks) is returned for the test to judge."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = analysis(gw, route)
        if body["phase"] == "idle" and body.get("last_run"):
            return {**body, **body["last_run"]}
        assert time.monotonic() < deadline, f"{route} stayed {body['phase']}: {body}"
        time.sleep(0.2)


def audit_actions(config: Path, route: str) -> list[dict[str, Any]]:
    path = config.with_name(config.name + ".audit.jsonl")
    if not path.is_file():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in entries if e["route"] == route]


@contextmanager
def prometheus(
    targets: list[str], workdir: Path, port: int | None = None, scrape: str = "250ms"
) -> Iterator[str]:
    """A real Prometheus (Debian's package) on a loopback port scraping ``targets``."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (make test installs it)"
    port = port or free_ports(1)[0]
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": scrape, "evaluation_interval": scrape},
                "scrape_configs": [
                    {"job_name": "servegate-gateway", "static_configs": [{"targets": targets}]}
                ],
            }
        )
    )
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: _ready(url), "prometheus ready", proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_until(predicate: Callable[[], bool], what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not predicate():
        assert proc.poll() is None, f"{what}: process exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
