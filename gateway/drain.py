"""Graceful drain of the HTTP listeners, bounded by the routes' timeouts.

uvicorn's own shutdown closes every idle keep-alive connection at once: a request a client is
sending on one at that moment is lost (the client sees the connection reset or closed without an
answer), and it gives up on requests in flight after a fixed ``timeout_graceful_shutdown``.
``DrainingServer`` instead

1. stops accepting (``stop_accepting``: closes its listening sockets; a successor that holds the
   same sockets keeps accepting on them);
2. lets each connection finish: a request in progress is answered with ``Connection: close``, an
   idle connection stays open until its next request (answered, with ``Connection: close``) or
   its keep-alive timeout, as in normal service (``listener.GuardedHttpToolsProtocol.shutdown``);
3. at the deadline (the longest route timeout plus ``MARGIN_S``: no request can be waiting
   on its upstream longer than that) cuts what is left and counts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from gateway.config import GatewayConfig

log = logging.getLogger(__name__)
MARGIN_S = 2.0
POLL_S = 0.05


def drain_bound_s(config: GatewayConfig) -> float:
    """How long a drain may take: the longest route timeout (every upstream call, retries
    included, ends by then) plus a margin to write the answers."""
    longest = max((r.timeout_s for r in config.routes.values()), default=0.0)
    return longest + MARGIN_S


def in_progress(connection: Any) -> bool:
    """Whether an HTTP connection has a request whose answer is not complete."""
    cycle = getattr(connection, "cycle", None)
    return cycle is not None and not cycle.response_complete


class DrainState(ServerState):
    """uvicorn's state shared by a listener's connections, and whether it drains (a connection
    accepted in the same loop turn as the drain began learns it here)."""

    draining = False


class DrainingServer(uvicorn.Server):
    """One listener (data plane or admin) on sockets bound by ``gateway.listeners``."""

    def __init__(self, name: str, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        super().__init__(config)
        self.server_state: DrainState = DrainState()
        self.name = name
        self.sockets = sockets
        self.deadline: float | None = None  # loop time; None: cut at once
        self.cut = 0  # requests still in progress at the deadline

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # GatewayServer handles signals for every listener

    async def run_on_sockets(self) -> None:
        await self.serve(sockets=self.sockets)

    def stop_accepting(self) -> None:
        for server in getattr(self, "servers", []):
            server.close()

    def open_requests(self) -> int:
        return sum(in_progress(c) for c in self.server_state.connections)

    def drain(self, deadline: float) -> None:
        """Stop accepting and tell every connection, now; stop once every connection is done,
        or at ``deadline`` (loop time)."""
        self.stop_accepting()
        self.server_state.draining = True
        for connection in list(self.server_state.connections):
            connection.shutdown()
        self.deadline = deadline
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # The listening sockets are not closed here: gateway.listeners owns them (a worker
        # or a successor may share them).
        if not self.server_state.draining:
            self.drain(asyncio.get_running_loop().time())
        state = self.server_state
        loop = asyncio.get_running_loop()
        # Read each turn: a second signal moves the deadline to now.
        while state.connections and loop.time() < (self.deadline or 0.0):
            await asyncio.sleep(POLL_S)
        self.cut = self.open_requests()
        if state.connections:
            log.warning(
                "%s: cutting %d connections at the drain bound (%d with a request in progress)",
                self.name,
                len(state.connections),
                self.cut,
            )
        for task in list(state.tasks):
            task.cancel()
        for connection in list(state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
