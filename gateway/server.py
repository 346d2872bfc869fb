"""Run the data plane (HTTP and gRPC) and the admin listener, one event loop per process
(``gateway.workers`` adds data-plane processes when ``workers > 1``).

``GatewayServer.serve`` is the coroutine (tests run it in a thread); ``run`` is the blocking
entry point for the CLI, with SIGINT/SIGTERM stopping both listeners gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Generator
from typing import Literal

import uvicorn
from starlette.types import ASGIApp

from gateway.app import create_admin_app, create_data_app
from gateway.canary.controller import CanaryController
from gateway.canary.status import StatusStore
from gateway.config import LoadedConfig, load_config
from gateway.grpc.server import GrpcServer
from gateway.listener import ListenerLimits, guarded_protocol
from gateway.settings import GatewaySettings
from gateway.state import Gateway
from gateway.workers import (
    WorkerPool,
    ensure_free,
    exit_with_parent,
    require_multiprocess_metrics,
    shared_socket,
)

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # GatewayServer handles signals for both listeners


Role = Literal["primary", "worker"]


class GatewayServer:
    """``primary``: the data plane, the admin listener, canary analysis, and the worker
    processes when ``settings.workers > 1``. ``worker``: the data plane only."""

    def __init__(
        self, settings: GatewaySettings, loaded: LoadedConfig | None = None, role: Role = "primary"
    ) -> None:
        # Loading here makes a bad config fail before any port is bound.
        self.settings = settings
        self.role = role
        self.loaded = loaded or load_config(settings.config)
        if settings.workers > 1 and role == "primary":
            require_multiprocess_metrics()
        self._servers: list[uvicorn.Server] = []
        self.gateway: Gateway | None = None
        self.grpc: GrpcServer | None = None
        self.workers: WorkerPool | None = None

    @property
    def started(self) -> bool:
        wanted = 2 if self.role == "primary" else 1
        servers = len(self._servers) == wanted and all(s.started for s in self._servers)
        return servers and self.grpc is not None and self.grpc.started

    def request_stop(self) -> None:
        for server in self._servers:
            server.should_exit = True

    async def serve(self) -> None:
        s = self.settings
        primary = self.role == "primary"
        shared = s.workers > 1
        gw = self.gateway = Gateway(s, self.loaded, primary=primary)
        canary = None
        if primary:
            status = StatusStore(s.canary_status_path())
            canary = CanaryController(gw, status, enabled=s.canary_analysis)
            gw.canary = canary
        data_socket = shared_socket(s.host, s.port, first=primary) if shared else None
        limits = ListenerLimits(
            s.header_timeout_s, s.max_header_count, s.max_header_bytes, s.max_connections
        )
        protocol = guarded_protocol(limits, gw.metrics.http_refusals)
        self._servers = [self._uvicorn(create_data_app(gw), s.host, s.port, protocol)]
        if primary:
            admin = create_admin_app(gw, s.token())
            self._servers.append(self._uvicorn(admin, s.admin_host, s.admin_port, protocol))
        await gw.start()
        tasks: list[asyncio.Task[None]] = []
        if canary is not None and s.canary_analysis:
            tasks.append(asyncio.create_task(canary.run(), name="canary-analysis"))
        if not primary:
            tasks.append(asyncio.create_task(exit_with_parent(self.request_stop)))
        try:
            if primary and shared:
                ensure_free(s.grpc_host, s.grpc_port)
            self.grpc = GrpcServer(gw, s, shared=shared)
            await self.grpc.start()
            if primary and data_socket is not None:
                tasks.append(self._start_workers(data_socket.getsockname()[1], self.grpc.port))
            where = f"http://{s.host}:{data_socket.getsockname()[1] if data_socket else s.port}"
            admin_at = f"http://{s.admin_host}:{s.admin_port}"
            log.info(
                "gateway on %s%s",
                where,
                f", admin and status page on {admin_at}" if primary else " (worker)",
            )
            data, *admin_listener = self._servers
            await asyncio.gather(
                data.serve(sockets=[data_socket] if data_socket else None),
                *(server.serve() for server in admin_listener),
            )
        finally:
            await self._shutdown(tasks)

    def _start_workers(self, port: int, grpc_port: int) -> asyncio.Task[None]:
        """Start the worker processes on the ports the primary resolved; the task restarts
        workers that die."""
        resolved = self.settings.model_copy(update={"port": port, "grpc_port": grpc_port})
        self.workers = WorkerPool(resolved, self.settings.workers - 1)
        self.workers.start()
        return asyncio.create_task(self.workers.watch(), name="worker-pool")

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.workers is not None:
            await self.workers.stop(timeout_s=35)
        gw = self.gateway
        if gw is not None and isinstance(gw.canary, CanaryController):
            await gw.canary.aclose()
        if self.grpc is not None:
            await self.grpc.stop(grace_s=30)
        if gw is not None:
            await gw.aclose()

    def _uvicorn(
        self, app: ASGIApp, host: str, port: int, protocol: type[asyncio.Protocol]
    ) -> uvicorn.Server:
        return _Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                http=protocol,
                lifespan="off",
                log_config=None,
                access_log=self.settings.access_log,
                server_header=False,
                timeout_graceful_shutdown=30,
                # No X-Forwarded-For rewriting: the gateway is the edge, the audit log
                # records the real peer, and the wrapper costs every request.
                proxy_headers=False,
            )
        )

    def run(self) -> None:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            loop = runner.get_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.request_stop)
            runner.run(self.serve())


def _loop_factory() -> type[asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.Loop
