"""The HTTP listening sockets of a gateway, bound here rather than by uvicorn so that they can be
given to worker processes and handed to a successor gateway (``gateway.handover``).

- ``data``: one socket per data-plane process, all on the data port in one SO_REUSEPORT group
  (the kernel spreads new connections over them); a process may serve several.
- ``admin``: the primary's admin listener.

Every data socket sets SO_REUSEPORT, so that a successor with more processes can add sockets to
the group. A fresh start first checks that nothing listens on a port (``ensure_free``), so a
stale gateway or another program on it still fails loudly. Sockets adopted from a predecessor
are the predecessor's own: they keep their accept queue, and a connection waiting in it is
accepted by whichever process serves the socket next, never refused.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

from gateway.errors import ConfigError

log = logging.getLogger(__name__)
BACKLOG = 2048
Address = tuple[str, int]


@dataclass(frozen=True)
class Inherited:
    """A listening socket received from a predecessor, with what it listens for."""

    role: str  # "data" or "admin"
    sock: socket.socket

    @property
    def address(self) -> Address:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)


@dataclass
class Listeners:
    data: list[socket.socket]
    admin: socket.socket | None = None
    adopted: int = 0  # how many came from a predecessor
    _closed: bool = field(default=False, repr=False)

    def for_process(self, index: int, processes: int) -> list[socket.socket]:
        """The data sockets process ``index`` of ``processes`` serves (each socket once)."""
        return self.data[index::processes]

    def offer(self) -> list[Inherited]:
        """Everything a successor takes over, data sockets first."""
        found = [Inherited("data", s) for s in self.data if s.fileno() >= 0]
        if self.admin is not None and self.admin.fileno() >= 0:
            found.append(Inherited("admin", self.admin))
        return found

    def close(self) -> None:
        """Close this process's descriptors. The sockets stop listening only once no process
        (a worker, a successor) holds them any more."""
        if self._closed:
            return
        self._closed = True
        for sock in self.all():
            sock.close()

    def all(self) -> Iterator[socket.socket]:
        yield from self.data
        if self.admin is not None:
            yield self.admin


def bind_listeners(
    data: Address,
    admin: Address | None,
    processes: int,
    inherited: list[Inherited] | None = None,
) -> Listeners:
    """At least ``processes`` data sockets and the admin socket, the predecessor's where one
    listens on the same address (port 0 takes the predecessor's port), the rest bound here."""
    pool = list(inherited or [])
    taken = [i.sock for i in _take(pool, "data", data)]
    admin_sock: socket.socket | None = None
    if admin is not None:
        adopted_admin = _take(pool, "admin", admin)
        admin_sock = adopted_admin[0].sock if adopted_admin else None
    for unused in pool:  # listens elsewhere than this gateway is configured to
        log.warning("not taking over the %s listener on %s:%d", unused.role, *unused.address)
        unused.sock.close()
    adopted = len(taken) + (admin_sock is not None)
    try:
        if not taken:
            ensure_free(*data)
            taken.append(listening_socket(*data, reuseport=True))
        port = taken[0].getsockname()[1]
        while len(taken) < processes:
            taken.append(listening_socket(data[0], port, reuseport=True))
        if admin is not None and admin_sock is None:
            ensure_free(*admin)
            admin_sock = listening_socket(*admin, reuseport=False)
    except BaseException:
        Listeners(taken, admin_sock).close()
        raise
    return Listeners(taken, admin_sock, adopted)


def _take(pool: list[Inherited], role: str, address: Address) -> list[Inherited]:
    host, port = address
    found = [i for i in pool if i.role == role and _same_host(i.address[0], host)]
    found = [i for i in found if port in (0, i.address[1])]
    if found:
        wanted = found[0].address[1]  # port 0: the first socket's port, and only that one
        found = [i for i in found if i.address[1] == wanted]
    for item in found:
        pool.remove(item)
    return found


def _same_host(bound: str, configured: str) -> bool:
    return bound == configured or {bound, configured} <= {"localhost", "127.0.0.1"}


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listening_socket(host: str, port: int, *, reuseport: bool) -> socket.socket:
    """A listening TCP socket; with ``reuseport`` other sockets of this user may join it
    (SO_REUSEPORT)."""
    sock = socket.socket(_family(host))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def ensure_free(host: str, port: int) -> None:
    """Fail when any socket listens on ``host:port``. The probe sets SO_REUSEADDR but not
    SO_REUSEPORT: connections a draining predecessor still finishes on the port do not count,
    a listener (a gateway still serving, any other program) does."""
    if port == 0:
        return
    probe = socket.socket(_family(host))
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    finally:
        probe.close()
