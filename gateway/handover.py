"""Hot restart, as Envoy does it: a new gateway takes the listening sockets of the one serving
now over a Unix control socket (SCM_RIGHTS), starts serving on them beside it, and only then
tells it to drain. The HTTP sockets are never closed in between: a connection waiting in their
accept queue is accepted by one process or the other, never refused. (gRPC cannot adopt a socket:
its listeners share the port through SO_REUSEPORT instead; see docs/gateway.md.)

On the control socket, one JSON line each way, the descriptors travel with the offer:

    new -> old   {"op": "take_over", "pid": <new pid>}
    old -> new   {"op": "offer", "pid": <old pid>, "roles": ["data", ..., "admin"]} + descriptors
                 (the new gateway starts serving on them, beside the old one)
    new -> old   {"op": "ready"}
    old -> new   {"op": "draining", "in_flight": <requests>}
                 (the old one has stopped accepting and stopped writing any state)

A new gateway that disconnects before "ready" (it failed to start) changes nothing: the old one
serves on. Only a process of the same user (or root) may connect (SO_PEERCRED), and the socket
file is mode 600 from the moment it has its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.listeners import Inherited

log = logging.getLogger(__name__)
MAX_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
MAX_FDS = 256
OFFER_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 120.0  # the new gateway starts its worker processes before "ready"
DRAINING_TIMEOUT_S = 10.0

Offer = Callable[[], list[Inherited]]
Replaced = Callable[[int], Awaitable[int]]  # successor pid -> requests in flight


class HandoverError(Exception):
    pass


def _send(conn: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode() + b"\n"
    if fds:
        socket.send_fds(conn, [data], fds)
    else:
        conn.sendall(data)


def _parse(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError:
        raise HandoverError("not a handover message") from None
    if not isinstance(message, dict):
        raise HandoverError("not a handover message")
    return message


def _check_peer(conn: socket.socket) -> None:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    if uid not in (os.geteuid(), 0):
        raise HandoverError(f"refused a control connection from uid {uid}")


class ControlListener:
    """The serving gateway's side: offers its sockets to one successor at a time."""

    def __init__(self, path: Path, offer: Offer, replaced: Replaced) -> None:
        self.path = path
        self._offer = offer
        self._replaced = replaced
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Bind the control socket (a predecessor's file there is replaced atomically)."""
        address = _address(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if address.startswith("\0"):
                sock.bind(address)
            else:
                self._bind_file(sock)
            sock.listen(4)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._task = asyncio.create_task(self._serve(), name="handover-control")

    def _bind_file(self, sock: socket.socket) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        try:
            sock.bind(str(tmp))
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)  # atomic: the name is never free, never mode > 600
        finally:
            tmp.unlink(missing_ok=True)
        self._inode = os.stat(self.path).st_ino

    async def close(self) -> None:
        """Stop answering; remove the file unless a successor has put its own there."""
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            with contextlib.suppress(OSError):
                if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                    self.path.unlink()

    async def _serve(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            with conn:
                try:
                    if await self._handle(conn):
                        return  # replaced: nothing more to hand over
                except (HandoverError, OSError, TimeoutError) as exc:
                    log.warning("handover not done, still serving: %s", exc)

    async def _handle(self, conn: socket.socket) -> bool:
        _check_peer(conn)
        reader = _LineReader(conn)
        request = await reader.read(OFFER_TIMEOUT_S)
        if request.get("op") != "take_over" or not isinstance(request.get("pid"), int):
            raise HandoverError(f"unexpected request {request.get('op')!r}")
        successor: int = request["pid"]
        offered = self._offer()
        if len(offered) > MAX_FDS:
            raise HandoverError(f"{len(offered)} sockets: more than {MAX_FDS}")
        roles = [item.role for item in offered]
        _send(
            conn,
            {"op": "offer", "pid": os.getpid(), "roles": roles},
            [i.sock.fileno() for i in offered],
        )
        log.info(
            "handed %d listening sockets to pid %d; serving until it is ready",
            len(roles),
            successor,
        )
        ready = await reader.read(READY_TIMEOUT_S)  # EOF: the successor failed to start
        if ready.get("op") != "ready":
            raise HandoverError(f"unexpected message {ready.get('op')!r}")
        in_flight = await self._replaced(successor)
        _send(conn, {"op": "draining", "in_flight": in_flight})
        return True


class _LineReader:
    """JSON lines from a non-blocking socket, on the event loop."""

    def __init__(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        self.conn = conn
        self.buffer = b""

    async def read(self, timeout_s: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout_s):
            while b"\n" not in self.buffer:
                chunk = await loop.sock_recv(self.conn, 4096)
                if not chunk:
                    raise HandoverError("the other gateway closed the control connection")
                self.buffer += chunk
                if len(self.buffer) > 65536:
                    raise HandoverError("handover message too long")
        line, _, self.buffer = self.buffer.partition(b"\n")
        return _parse(line)


def _address(path: Path) -> str:
    """``path`` itself, or, when it is too long for a Unix socket, an abstract name made from
    it (Linux; no file, so no file mode: SO_PEERCRED still checks who connects)."""
    if len(os.fsencode(path)) <= MAX_PATH:
        return str(path)
    digest = hashlib.sha256(os.fsencode(path.resolve())).hexdigest()[:32]
    return f"\0servegate-gateway-{digest}"


def serving_at(path: Path) -> bool:
    """Whether a gateway answers on the control socket ``path`` (a stale file: no)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(_address(path))
        except OSError:
            return False  # no file, or a stale one: its gateway is gone
    return True


class Predecessor:
    """The new gateway's side of a handover: the old gateway's sockets, and the call that
    makes it drain. Blocking calls, made from a thread."""

    def __init__(
        self, conn: socket.socket, pid: int, sockets: list[Inherited], buffered: bytes = b""
    ) -> None:
        self.conn = conn
        self.pid = pid
        self.sockets = sockets
        self._buffer = buffered

    def replaced(self) -> int:
        """Tell the old gateway to drain; its requests in flight once it stopped accepting."""
        self.conn.settimeout(DRAINING_TIMEOUT_S)
        try:
            self.conn.sendall(json.dumps({"op": "ready"}).encode() + b"\n")
            answer = self._read_line()
        finally:
            self.conn.close()
        if answer.get("op") != "draining":
            raise HandoverError(f"unexpected answer {answer.get('op')!r}")
        return int(answer.get("in_flight", 0))

    def abort(self) -> None:
        """The new gateway cannot serve: the old one goes on as before."""
        self.conn.close()

    def _read_line(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            chunk = self.conn.recv(4096)
            if not chunk:
                raise HandoverError("the old gateway closed the control connection")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return _parse(line)


def take_over(path: Path) -> Predecessor | None:
    """Ask the gateway answering on ``path`` for its listening sockets; None when no gateway
    answers there (nothing to replace: a fresh start)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(OFFER_TIMEOUT_S)
    try:
        conn.connect(_address(path))
    except (FileNotFoundError, ConnectionRefusedError):
        conn.close()
        return None
    sockets: list[socket.socket] = []
    try:
        conn.sendall(json.dumps({"op": "take_over", "pid": os.getpid()}).encode() + b"\n")
        data, fds, _flags, _addr = socket.recv_fds(conn, 65536, MAX_FDS)
        sockets = [socket.socket(fileno=fd) for fd in fds]
        if not data:
            raise HandoverError("the gateway on the control socket refused the handover")
        line, _, rest = data.partition(b"\n")
        offer = _parse(line)
        roles = offer.get("roles")
        if offer.get("op") != "offer" or not isinstance(roles, list) or len(roles) != len(fds):
            raise HandoverError("a malformed offer")
    except BaseException:
        for sock in sockets:
            sock.close()
        conn.close()
        raise
    inherited = [Inherited(str(r), s) for r, s in zip(roles, sockets, strict=True)]
    return Predecessor(conn, int(offer["pid"]), inherited, rest)
