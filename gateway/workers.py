"""Worker processes for a multi-process gateway (``workers > 1``).

The primary process binds the data-plane ports first (a port already in use fails loudly),
then starts ``workers - 1`` workers that bind the same ports with SO_REUSEPORT, so the kernel
spreads connections over every process's event loop. Workers serve the data plane only
(HTTP and gRPC) and watch the config file for themselves; the primary also runs the admin
listener, the status page's stats, backend scraping and canary analysis. Metrics go through
prometheus_client's multi-process mode (``PROMETHEUS_MULTIPROC_DIR``), summed by the primary.

A worker that dies is logged and started again; one that keeps dying at start is given up on.
Workers stop when the primary asks (SIGTERM) or when it disappears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

from gateway.errors import ConfigError
from gateway.metrics import multiprocess_dir
from gateway.settings import GatewaySettings, load_settings

log = logging.getLogger(__name__)
RESTARTS_BEFORE_GIVING_UP = 5
QUICK_DEATH_S = 10.0


def shared_socket(host: str, port: int, *, first: bool) -> socket.socket:
    """A listening TCP socket that other processes may bind too (SO_REUSEPORT). The ``first``
    (the primary) refuses a port that anything holds already, a stale gateway included."""
    if first:
        ensure_free(host, port)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def ensure_free(host: str, port: int) -> None:
    """Bind ``port`` without SO_REUSEPORT for a moment: fails if any socket holds it."""
    if port == 0:
        return
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    finally:
        probe.close()


def require_multiprocess_metrics() -> None:
    """Refuse to start workers whose metrics could not be summed."""
    path = multiprocess_dir()
    if path is None:
        raise ConfigError(
            "workers > 1 needs PROMETHEUS_MULTIPROC_DIR set before prometheus_client is "
            "imported (`servegate gateway run --workers N` does this)"
        )
    for stale in Path(path).glob("*.db"):  # a previous run's numbers must not be summed in
        stale.unlink(missing_ok=True)


def worker_main(settings: dict[str, Any]) -> None:
    """Entry point of a worker process (spawned: a fresh interpreter)."""
    from gateway.server import GatewayServer  # after the spawn set up the environment

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [worker %(process)d] %(message)s"
    )
    GatewayServer(load_settings(**settings), role="worker").run()


class WorkerPool:
    def __init__(self, settings: GatewaySettings, count: int) -> None:
        # Workers never need the admin token: they run no admin listener.
        self.settings = settings.model_dump(exclude={"admin_token", "admin_token_file"})
        self.count = count
        self._context = multiprocessing.get_context("spawn")
        self._procs: list[BaseProcess] = []
        self._started: dict[int, float] = {}
        self._quick_deaths = 0
        self._stopping = False

    def start(self) -> None:
        for _ in range(self.count):
            self._spawn()
        log.info("started %d worker processes", self.count)

    def _spawn(self) -> None:
        proc = self._context.Process(
            target=worker_main, args=(self.settings,), name="servegate-gateway-worker"
        )
        proc.start()
        self._procs.append(proc)
        self._started[proc.pid or 0] = time.monotonic()

    async def watch(self) -> None:
        """Restart workers that die; give up on ones that die at start over and over."""
        while not self._stopping:
            await asyncio.sleep(1.0)
            for proc in [p for p in self._procs if not p.is_alive()]:
                if self._stopping:
                    return
                self._procs.remove(proc)
                multiprocess.mark_process_dead(proc.pid)  # type: ignore[no-untyped-call]
                lived = time.monotonic() - self._started.pop(proc.pid or 0, 0.0)
                self._quick_deaths = self._quick_deaths + 1 if lived < QUICK_DEATH_S else 0
                if self._quick_deaths > RESTARTS_BEFORE_GIVING_UP:
                    log.error(
                        "worker %s exited with %s at start again: not restarting it",
                        proc.pid,
                        proc.exitcode,
                    )
                    continue
                log.error("worker %s exited with %s: starting another", proc.pid, proc.exitcode)
                self._spawn()

    async def stop(self, timeout_s: float) -> None:
        self._stopping = True
        for proc in self._procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self._procs:
            while proc.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if proc.is_alive():
                log.warning("worker %s ignored SIGTERM: killing it", proc.pid)
                proc.kill()
            proc.join(5)
            with contextlib.suppress(Exception):
                multiprocess.mark_process_dead(proc.pid)  # type: ignore[no-untyped-call]
        self._procs.clear()


async def exit_with_parent(stop: Any) -> None:
    """In a worker: stop when the primary is gone (its pid is no longer our parent)."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("the primary process is gone: stopping")
    stop()
