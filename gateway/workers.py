"""Worker processes for a multi-process gateway (``workers > 1``).

The primary process binds every data-plane socket (``gateway.listeners``: one per process, on
one port in a SO_REUSEPORT group, so the kernel spreads connections over every process's event
loop) and gives each worker its socket. Workers bind their own gRPC listener on the shared gRPC
port (SO_REUSEPORT: gRPC cannot adopt a socket). Workers serve the data plane only and watch the
config file for themselves; the primary also runs the admin listener, the status page's stats,
backend scraping and canary analysis. Metrics go through prometheus_client's multi-process mode
(``PROMETHEUS_MULTIPROC_DIR``), summed by the primary.

The primary keeps its own descriptor of every worker's socket: a connection that reaches a
worker's socket while the worker is being replaced waits in its accept queue for the
replacement instead of being reset, and a successor gateway takes over every socket
(``gateway.handover``). A worker that dies is logged and started again with the same socket; one
that keeps dying at start is given up on, and its socket closed. Workers drain when the primary
asks (SIGTERM) and stop when it disappears.
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
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

from gateway.errors import ConfigError
from gateway.metrics import multiprocess_dir
from gateway.settings import GatewaySettings, load_settings

log = logging.getLogger(__name__)
RESTARTS_BEFORE_GIVING_UP = 5
QUICK_DEATH_S = 10.0
POLL_S = 0.05


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


def worker_main(settings: dict[str, Any], sockets: list[socket.socket], serving: Event) -> None:
    """Entry point of a worker process (spawned: a fresh interpreter)."""
    from gateway.server import GatewayServer  # after the spawn set up the environment

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [worker %(process)d] %(message)s"
    )
    server = GatewayServer(load_settings(**settings), role="worker", sockets=sockets)
    server.on_serving = serving.set
    server.run()


class _Slot:
    """One worker: its sockets, and the process serving them now."""

    def __init__(self, sockets: list[socket.socket], context: Any) -> None:
        self.sockets = sockets
        self.serving: Event = context.Event()
        self.proc: BaseProcess | None = None
        self.started_at = 0.0
        self.quick_deaths = 0


class WorkerPool:
    def __init__(self, settings: GatewaySettings, sockets: list[list[socket.socket]]) -> None:
        # Workers never need the admin token: they run no admin listener.
        self.settings = settings.model_dump(exclude={"admin_token", "admin_token_file"})
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(s, self._context) for s in sockets]
        self._stopping = False
        self._stopped: asyncio.Future[None] | None = None

    def start(self) -> None:
        for slot in self._slots:
            self._spawn(slot)
        log.info("started %d worker processes", len(self._slots))

    def _spawn(self, slot: _Slot) -> None:
        slot.serving.clear()
        proc = self._context.Process(
            target=worker_main,
            args=(self.settings, slot.sockets, slot.serving),
            name="servegate-gateway-worker",
        )
        proc.start()
        slot.proc = proc
        slot.started_at = time.monotonic()

    async def wait_serving(self, timeout_s: float) -> None:
        """Until every worker serves; ``ConfigError`` when one does not in time."""
        deadline = time.monotonic() + timeout_s
        while not all(slot.serving.is_set() for slot in self._slots):
            dead = [s.proc for s in self._slots if s.proc is not None and not s.proc.is_alive()]
            if dead or time.monotonic() > deadline:
                raise ConfigError("a worker process did not start; see its log lines above")
            await asyncio.sleep(POLL_S)

    async def watch(self) -> None:
        """Restart workers that die; give up on ones that die at start over and over."""
        while not self._stopping:
            await asyncio.sleep(1.0)
            for slot in self._slots:
                if self._stopping:
                    return
                proc = slot.proc
                if proc is None or proc.is_alive():
                    continue
                multiprocess.mark_process_dead(proc.pid)  # type: ignore[no-untyped-call]
                lived = time.monotonic() - slot.started_at
                slot.quick_deaths = slot.quick_deaths + 1 if lived < QUICK_DEATH_S else 0
                if slot.quick_deaths > RESTARTS_BEFORE_GIVING_UP:
                    log.error(
                        "worker %s exited with %s at start again: not restarting it",
                        proc.pid,
                        proc.exitcode,
                    )
                    slot.proc = None
                    for sock in slot.sockets:  # nobody will accept there: let the kernel
                        sock.close()  # send its connections to the other processes
                    continue
                log.error("worker %s exited with %s: starting another", proc.pid, proc.exitcode)
                self._spawn(slot)

    def hurry(self) -> None:
        """Signal every worker again: a second SIGTERM cuts its drain short."""
        for slot in self._slots:
            if slot.proc is not None and slot.proc.is_alive() and slot.proc.pid is not None:
                os.kill(slot.proc.pid, signal.SIGTERM)

    async def stop(self, deadline: float) -> None:
        """Ask every worker to drain (SIGTERM); kill the ones still running at ``deadline``
        (``time.monotonic()``). Asked again, it waits for the first stop: only ``hurry``
        signals a worker a second time."""
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop_all(deadline))
        await asyncio.shield(self._stopped)

    async def _stop_all(self, deadline: float) -> None:
        self._stopping = True
        procs = [slot.proc for slot in self._slots if slot.proc is not None]
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            while proc.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(POLL_S)
            if proc.is_alive():
                log.warning("worker %s still running at the drain bound: killing it", proc.pid)
                proc.kill()
            proc.join(5)
            with contextlib.suppress(Exception):
                multiprocess.mark_process_dead(proc.pid)  # type: ignore[no-untyped-call]
            if proc.exitcode not in (0, None, -signal.SIGKILL):
                log.warning("worker %s exited with %s", proc.pid, proc.exitcode)
        for slot in self._slots:
            slot.proc = None


async def exit_with_parent(stop: Any) -> None:
    """In a worker: stop when the primary is gone (its pid is no longer our parent)."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("the primary process is gone: stopping")
    stop()
