"""Run the data plane (HTTP and gRPC) and the admin listener in one process, one event loop.

``GatewayServer.serve`` is the coroutine (tests run it in a thread); ``run`` is the blocking
entry point for the CLI, with SIGINT/SIGTERM stopping both listeners gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp

from gateway.app import create_admin_app, create_data_app
from gateway.canary.controller import CanaryController
from gateway.canary.status import StatusStore
from gateway.config import LoadedConfig, load_config
from gateway.grpc.server import GrpcServer
from gateway.settings import GatewaySettings
from gateway.state import Gateway

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # GatewayServer handles signals for both listeners


class GatewayServer:
    def __init__(self, settings: GatewaySettings, loaded: LoadedConfig | None = None) -> None:
        # Loading here makes a bad config fail before any port is bound.
        self.settings = settings
        self.loaded = loaded or load_config(settings.config)
        self._servers: list[uvicorn.Server] = []
        self.gateway: Gateway | None = None
        self.grpc: GrpcServer | None = None

    @property
    def started(self) -> bool:
        servers = len(self._servers) == 2 and all(s.started for s in self._servers)
        return servers and self.grpc is not None and self.grpc.started

    def request_stop(self) -> None:
        for server in self._servers:
            server.should_exit = True

    async def serve(self) -> None:
        s = self.settings
        gw = self.gateway = Gateway(s, self.loaded)
        canary = CanaryController(
            gw, StatusStore(s.canary_status_path()), enabled=s.canary_analysis
        )
        gw.canary = canary
        apps: list[tuple[ASGIApp, str, int]] = [
            (create_data_app(gw), s.host, s.port),
            (create_admin_app(gw, s.token()), s.admin_host, s.admin_port),
        ]
        self._servers = [
            _Server(
                uvicorn.Config(
                    app,
                    host=host,
                    port=port,
                    http="httptools",
                    lifespan="off",
                    log_config=None,
                    access_log=s.access_log,
                    server_header=False,
                    timeout_graceful_shutdown=30,
                    # No X-Forwarded-For rewriting: the gateway is the edge, the audit log
                    # records the real peer, and the wrapper costs every request.
                    proxy_headers=False,
                )
            )
            for app, host, port in apps
        ]
        await gw.start()
        analysis = (
            asyncio.create_task(canary.run(), name="canary-analysis") if s.canary_analysis else None
        )
        try:
            self.grpc = GrpcServer(gw, s)
            await self.grpc.start()
            log.info(
                "gateway on http://%s:%d, admin and status page on http://%s:%d",
                s.host,
                s.port,
                s.admin_host,
                s.admin_port,
            )
            await asyncio.gather(*(server.serve() for server in self._servers))
        finally:
            if analysis is not None:
                analysis.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await analysis
            await canary.aclose()
            if self.grpc is not None:
                await self.grpc.stop(grace_s=30)
            await gw.aclose()

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
