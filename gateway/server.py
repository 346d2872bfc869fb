"""Run the data plane (HTTP and gRPC) and the admin listener, one event loop per process
(``gateway.workers`` adds data-plane processes when ``workers > 1``).

The primary's life:

1. take the listening sockets: bound here (``gateway.listeners``), or, with ``take_over``,
   taken from the gateway serving now (``gateway.handover``);
2. serve the data plane: HTTP, gRPC, the worker processes;
3. own what runs once: claim the pid file, tell a predecessor to drain (it stops writing
   state), then start the config watcher, canary analysis, the admin listener and the control
   socket a successor will take over from;
4. on SIGTERM/SIGINT, or when a successor is ready: drain (``_begin_drain``) - stop accepting
   on every listener at once, give up ownership at once, let the requests in flight finish
   within the drain bound (``gateway.drain``), and return.

``GatewayServer.serve`` is the coroutine (tests run it in a thread); ``run`` is the blocking
entry point for the CLI. A second SIGTERM/SIGINT cuts the drain short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Callable
from typing import Literal

import uvicorn
from starlette.types import ASGIApp

from gateway import pidfile
from gateway.app import create_admin_app, create_data_app
from gateway.canary.controller import CanaryController
from gateway.canary.status import StatusStore
from gateway.config import LoadedConfig, load_config
from gateway.drain import DrainingServer, drain_bound_s
from gateway.errors import ConfigError
from gateway.grpc.server import GrpcServer
from gateway.handover import ControlListener, HandoverError, Predecessor, serving_at, take_over
from gateway.listener import ListenerLimits, guarded_protocol
from gateway.listeners import Listeners, bind_listeners, ensure_free
from gateway.settings import GatewaySettings
from gateway.state import Gateway
from gateway.workers import WorkerPool, exit_with_parent, require_multiprocess_metrics

log = logging.getLogger(__name__)
Role = Literal["primary", "worker"]
WORKERS_START_S = 60.0
WORKERS_MARGIN_S = 5.0  # beyond the drain bound, before a worker still draining is killed


class GatewayServer:
    """``primary``: the data plane, the admin listener, canary analysis, and the worker
    processes when ``settings.workers > 1``. ``worker``: the data plane only, on ``sockets``."""

    def __init__(
        self,
        settings: GatewaySettings,
        loaded: LoadedConfig | None = None,
        role: Role = "primary",
        *,
        take_over: bool = False,
        sockets: list[socket.socket] | None = None,
    ) -> None:
        # Loading here makes a bad config fail before any port is bound.
        self.settings = settings
        self.role = role
        self.take_over = take_over
        self.loaded = loaded or load_config(settings.config)
        if settings.workers > 1 and role == "primary":
            require_multiprocess_metrics()
        self._given = sockets or []
        self.gateway: Gateway | None = None
        self.grpc: GrpcServer | None = None
        self.workers: WorkerPool | None = None
        self.listeners: Listeners | None = None
        self.control: ControlListener | None = None
        self.canary: CanaryController | None = None
        self.on_serving: Callable[[], None] | None = None  # a worker tells its primary
        self._servers: list[DrainingServer] = []
        self._server_tasks: list[asyncio.Task[None]] = []
        self._admin: DrainingServer | None = None
        self._background: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_asked = False
        self._drain: _Drain | None = None
        self._drain_begun: asyncio.Future[int] | None = None  # done once everything is told
        self._stopping: list[asyncio.Task[None]] = []

    @property
    def primary(self) -> bool:
        return self.role == "primary"

    @property
    def started(self) -> bool:
        wanted = 2 if self.primary else 1
        servers = len(self._servers) == wanted and all(s.started for s in self._servers)
        return servers and self.grpc is not None and self.grpc.started

    def request_stop(self) -> None:
        """Drain and return from ``serve``; callable from a signal handler or another thread."""
        if self._loop is None or self._stop is None:
            self._stop_asked = True
            return
        self._loop.call_soon_threadsafe(self._stop.set)

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_asked:
            self._stop.set()
        predecessor = await self._predecessor()
        try:
            self.listeners = self._listeners(predecessor)
            await self._serve_data_plane(replacing=predecessor is not None)
            if self.primary:
                await self._take_ownership(predecessor)
                predecessor = None
            if self.on_serving is not None:
                self.on_serving()
            self._log_serving()
            await self._until_stopped()
            await self._begin_drain("asked to stop")
            await self._finish_drain()
        finally:
            if predecessor is not None:
                predecessor.abort()  # we never served: the old gateway goes on
            await self._close()

    # --- starting -----------------------------------------------------------------------

    async def _predecessor(self) -> Predecessor | None:
        path = self.settings.control_socket
        if not self.primary or path is None:
            return None
        if not self.take_over:
            if await asyncio.to_thread(serving_at, path):
                raise ConfigError(
                    f"a gateway already answers on {path}: `servegate gateway restart` "
                    "replaces it without dropping requests"
                )
            return None
        try:
            found = await asyncio.to_thread(take_over, path)
        except (HandoverError, OSError) as exc:
            raise ConfigError(f"cannot take over from the gateway on {path}: {exc}") from None
        if found is None:
            log.info("no gateway answers on %s: starting afresh", path)
        else:
            log.info("taking over from the gateway with pid %d", found.pid)
        return found

    def _listeners(self, predecessor: Predecessor | None) -> Listeners:
        s = self.settings
        if not self.primary:
            return Listeners(list(self._given))
        inherited = predecessor.sockets if predecessor is not None else None
        admin = (s.admin_host, s.admin_port)
        return bind_listeners((s.host, s.port), admin, s.workers, inherited)

    async def _serve_data_plane(self, *, replacing: bool) -> None:
        s = self.settings
        assert self.listeners is not None
        gw = self.gateway = Gateway(s, self.loaded, primary=self.primary)
        limits = ListenerLimits(
            s.header_timeout_s, s.max_header_count, s.max_header_bytes, s.max_connections
        )
        protocol = guarded_protocol(limits, gw.metrics.http_refusals)
        own = self.listeners.for_process(0, s.workers) if self.primary else self.listeners.data
        data = self._uvicorn("data plane", create_data_app(gw), own, protocol)
        if self.primary:
            assert self.listeners.admin is not None
            admin_app = create_admin_app(gw, s.token())
            self._admin = self._uvicorn("admin", admin_app, [self.listeners.admin], protocol)
            if not replacing:
                ensure_free(s.grpc_host, s.grpc_port)
        self.grpc = GrpcServer(gw, s)
        await self.grpc.start()
        if self.primary and s.workers > 1:
            await self._start_workers(self.grpc.port)
        await self._run(data)
        if not self.primary:
            await gw.start()
            self._background.append(asyncio.create_task(exit_with_parent(self.request_stop)))

    async def _start_workers(self, grpc_port: int) -> None:
        """Workers on the ports the primary resolved, each on its own data socket(s); returns
        once every one serves. A task restarts workers that die."""
        s = self.settings
        assert self.listeners is not None
        port = self.listeners.data[0].getsockname()[1]
        resolved = s.model_copy(update={"port": port, "grpc_port": grpc_port})
        sockets = [self.listeners.for_process(i, s.workers) for i in range(1, s.workers)]
        self.workers = WorkerPool(resolved, sockets)
        self.workers.start()
        await self.workers.wait_serving(WORKERS_START_S)
        self._background.append(asyncio.create_task(self.workers.watch(), name="worker-pool"))

    async def _take_ownership(self, predecessor: Predecessor | None) -> None:
        s = self.settings
        gw = self.gateway
        assert gw is not None and self._admin is not None and self.listeners is not None
        if s.pid_file is not None:  # before the predecessor drains: it leaves ours alone
            pidfile.claim(s.pid_file)
        if predecessor is not None:
            await self._replace(predecessor)
        await gw.start()
        self.canary = CanaryController(
            gw, StatusStore(s.canary_status_path()), enabled=s.canary_analysis
        )
        gw.canary = self.canary
        if s.canary_analysis:
            self._background.append(asyncio.create_task(self.canary.run(), name="canary"))
        await self._run(self._admin)
        if s.control_socket is not None:
            self.control = ControlListener(s.control_socket, self.listeners.offer, self._replaced)
            self.control.start()

    async def _replace(self, predecessor: Predecessor) -> None:
        try:
            in_flight = await asyncio.to_thread(predecessor.replaced)
        except (HandoverError, OSError) as exc:
            log.error(
                "the gateway with pid %d did not confirm its drain (%s)", predecessor.pid, exc
            )
            return
        log.info(
            "took over from pid %d, which drains its %d requests in flight",
            predecessor.pid,
            in_flight,
        )

    async def _run(self, server: DrainingServer) -> None:
        task = asyncio.create_task(server.run_on_sockets(), name=f"uvicorn {server.name}")
        self._servers.append(server)
        self._server_tasks.append(task)
        while not server.started:
            if task.done():
                task.result()  # its startup error
                raise ConfigError(f"the {server.name} listener did not start")
            await asyncio.sleep(0.01)

    async def _until_stopped(self) -> None:
        assert self._stop is not None
        stop = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait(
                [stop, *self._server_tasks], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.cancel()
        for task in done:
            if task is not stop:
                task.result()  # a listener that failed: its error

    def _log_serving(self) -> None:
        s = self.settings
        assert self.listeners is not None
        host, port = self.listeners.data[0].getsockname()[:2] if self.listeners.data else ("", 0)
        where = f"http://{host}:{port}"
        if self.primary:
            log.info(
                "gateway on %s, admin and status page on %s:%d", where, s.admin_host, s.admin_port
            )
        else:
            log.info("gateway on %s (worker)", where)

    # --- draining -----------------------------------------------------------------------

    async def _replaced(self, successor: int) -> int:
        """A successor serves on our sockets: drain (the handover's ``Replaced``)."""
        return await self._begin_drain(f"replaced by pid {successor}")

    async def _begin_drain(self, why: str) -> int:
        """Stop accepting everywhere and stop writing state, at once; the requests in flight
        then. The drain begins once: a second caller (``serve``, woken by a listener that
        finished draining, while a handover's drain is still telling gRPC and the workers)
        waits until the first has told everything, so that ``_finish_drain`` waits for all of
        it and nothing is stopped twice (a second SIGTERM cuts a worker's drain short)."""
        if self._drain_begun is not None:
            return await asyncio.shield(self._drain_begun)
        begun = self._drain_begun = asyncio.get_running_loop().create_future()
        try:
            in_flight = await self._start_drain(why)
        except BaseException as exc:
            begun.set_exception(exc)
            begun.exception()  # retrieved: the first caller raises it
            raise
        begun.set_result(in_flight)
        return in_flight

    async def _start_drain(self, why: str) -> int:
        gw = self.gateway
        assert gw is not None and self._stop is not None
        loop = asyncio.get_running_loop()
        bound = drain_bound_s(gw.table.loaded.config)
        drain = self._drain = _Drain(loop.time(), loop.time() + bound, gw.requests.in_flight)
        drain.answered_before = gw.requests.answered
        drain.abandoned_before = gw.requests.abandoned
        gw.draining = True
        for server in self._servers:
            server.drain(drain.deadline)
        self._stop_accepting()
        if self.grpc is not None and self.grpc.started:
            self._stopping.append(await self.grpc.begin_stop(grace_s=bound))
        if self.workers is not None:
            deadline = time.monotonic() + bound + WORKERS_MARGIN_S
            self._stopping.append(asyncio.create_task(self.workers.stop(deadline)))
        connections = sum(len(s.server_state.connections) for s in self._servers)
        log.info(
            "draining (%s): stopped accepting; %d requests in flight, %d HTTP connections "
            "open; waiting up to %.0f s",
            why,
            drain.in_flight,
            connections,
            bound,
        )
        await self._give_up_ownership()
        self._stop.set()
        return drain.in_flight

    def _stop_accepting(self) -> None:
        for server in (*self._servers, *([self._admin] if self._admin else [])):
            server.stop_accepting()
        if self.listeners is not None:
            self.listeners.close()  # our copies: workers' and a successor's stay open

    async def _give_up_ownership(self) -> None:
        if self.control is not None:
            await self.control.close()
        if self.primary and self.settings.pid_file is not None:
            pidfile.release(self.settings.pid_file)
        await self._cancel_background()
        if self.gateway is not None:
            await self.gateway.stop_background()

    async def _cancel_background(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background = []

    async def _finish_drain(self) -> None:
        drain, gw = self._drain, self.gateway
        assert drain is not None and gw is not None
        await asyncio.gather(*self._server_tasks, *self._stopping, return_exceptions=True)
        loop = asyncio.get_running_loop()
        log.info(
            "drained in %.1f s: %d requests answered during the drain, %d abandoned (cut at "
            "the bound, or their client left)",
            loop.time() - drain.began,
            gw.requests.answered - drain.answered_before,
            gw.requests.abandoned - drain.abandoned_before,
        )

    async def _close(self) -> None:
        """Whatever is still running (a start that failed half way, or after the drain)."""
        for server in self._servers:
            if not server.server_state.draining:
                server.drain(asyncio.get_running_loop().time())
        self._stop_accepting()
        await asyncio.gather(*self._server_tasks, return_exceptions=True)
        await self._cancel_background()
        if self.workers is not None:
            await self.workers.stop(time.monotonic() + WORKERS_MARGIN_S)
        if self.grpc is not None and self.grpc.started:
            await self.grpc.stop(grace_s=0)
        if self.control is not None:
            await self.control.close()
        if self.primary and self.settings.pid_file is not None:
            pidfile.release(self.settings.pid_file)
        if self.canary is not None:
            await self.canary.aclose()
        if self.gateway is not None:
            await self.gateway.aclose()

    def _uvicorn(
        self,
        name: str,
        app: ASGIApp,
        sockets: list[socket.socket],
        protocol: type[asyncio.Protocol],
    ) -> DrainingServer:
        config = uvicorn.Config(
            app,
            http=protocol,
            lifespan="off",
            log_config=None,
            access_log=self.settings.access_log,
            server_header=False,
            timeout_keep_alive=self.settings.keep_alive_s,  # type: ignore[arg-type]
            # No X-Forwarded-For rewriting: the gateway is the edge, the audit log
            # records the real peer, and the wrapper costs every request.
            proxy_headers=False,
        )
        return DrainingServer(name, config, sockets)

    def run(self) -> None:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            loop = runner.get_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._signalled, sig)
            runner.run(self.serve())

    def _signalled(self, sig: int) -> None:
        if self._drain is None:
            log.info("%s: draining", signal.Signals(sig).name)
            self.request_stop()
            return
        log.warning("%s again: cutting the drain short", signal.Signals(sig).name)
        now = asyncio.get_running_loop().time()
        self._drain.deadline = now
        for server in self._servers:
            server.deadline = now
        if self.grpc is not None:
            self._stopping.append(asyncio.create_task(self.grpc.stop(grace_s=0)))
        if self.workers is not None:
            self.workers.hurry()


class _Drain:
    def __init__(self, began: float, deadline: float, in_flight: int) -> None:
        self.began = began
        self.deadline = deadline
        self.in_flight = in_flight
        self.answered_before = 0
        self.abandoned_before = 0


def _loop_factory() -> type[asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.Loop
