"""``servegate gateway run|start|restart|stop`` runs the gateway (foreground, or in the
background with its pid file and control socket under ``.servegate/``); ``restart`` starts a new
gateway that takes the running one's sockets before that one drains (``gateway.handover``), so no
request is refused or dropped. ``servegate routes`` shows the routes through the admin API with
the token from ``.servegate/admin_token`` (``servegate canary ...`` lives in canary_cmd).
``.servegate/`` is found from any directory: see ``servegate.home``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from servegate import home

log = logging.getLogger("servegate.gateway")
ADMIN_URL = "http://127.0.0.1:8001"
START_TIMEOUT_S = 60.0
# The gateway bounds its own drain (the longest route timeout, at most 600 s, plus a margin):
# `stop` kills it only if it outlives that.
STOP_TIMEOUT_S = 630.0
ACTIONS = (
    ("run", "run in the foreground"),
    ("start", "run in the background"),
    ("restart", "replace the background gateway without dropping a request"),
)


def register(sub: Any) -> None:
    gw: argparse.ArgumentParser = sub.add_parser("gateway", help="run the traffic gateway")
    actions = gw.add_subparsers(dest="action", required=True)
    for action, helptext in ACTIONS:
        p: argparse.ArgumentParser = actions.add_parser(action, help=helptext)
        p.add_argument(
            "--config",
            type=Path,
            default=Path("gateway.yaml"),
            help="routes and backends, hot-reloaded (default: %(default)s)",
        )
        p.add_argument("--host", default=None, help="data-plane listener (default 127.0.0.1)")
        p.add_argument("--port", type=int, default=None, help="data-plane port (default 8000)")
        p.add_argument("--admin-host", default=None, help="admin listener (default 127.0.0.1)")
        p.add_argument(
            "--admin-port", type=int, default=None, help="admin, metrics, status page (8001)"
        )
        p.add_argument("--grpc-host", default=None, help="gRPC listener (default 127.0.0.1)")
        p.add_argument("--grpc-port", type=int, default=None, help="gRPC port (default 9000)")
        p.add_argument(
            "--workers",
            type=int,
            default=None,
            help="data-plane processes sharing the ports (default 1; one per spare core for "
            "throughput)",
        )
        p.add_argument(
            "--token-file",
            type=Path,
            default=token_file(),
            help="admin token file (SERVEGATE_GATEWAY_ADMIN_TOKEN wins; default: %(default)s)",
        )
        p.add_argument(
            "--cancel-dir",
            type=Path,
            default=home.cancel_dir(),
            help="where to leave the marker that stops a generation whose streaming client "
            "left: TorchServe's --cancel-dir, the same directory (default: %(default)s)",
        )
        if action == "run":
            restart_args(p)
        runs = {"run": run_gateway, "start": start_gateway, "restart": restart_gateway}
        p.set_defaults(run=runs[action])
    stop = actions.add_parser("stop", help="drain and stop the background gateway")
    stop.set_defaults(run=stop_gateway)

    routes: argparse.ArgumentParser = sub.add_parser("routes", help="show routes and weights")
    admin_args(routes)
    routes.set_defaults(run=show_routes)


def restart_args(p: argparse.ArgumentParser) -> None:
    """What `start` and `restart` give the gateway they run in the background."""
    p.add_argument("--pid-file", type=Path, default=None, help="written while this gateway serves")
    p.add_argument(
        "--control-socket",
        type=Path,
        default=None,
        help="Unix socket a successor takes this gateway's listening sockets from",
    )
    p.add_argument(
        "--take-over",
        action="store_true",
        help="take the listening sockets of the gateway on --control-socket, then make it drain",
    )


def _cancel_dir(path: Path | None) -> Path | None:
    """The directory, made if missing; SERVEGATE_GATEWAY_CANCEL_DIR wins (compose sets it)."""
    if os.environ.get("SERVEGATE_GATEWAY_CANCEL_DIR") or path is None:
        return None  # the settings read the environment themselves
    path = path.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only filesystem (a container's root): serve all the same
        log.warning(
            "cannot make the cancel directory %s (%s): a streaming client that leaves will "
            "not stop its generation; set --cancel-dir to a writable directory TorchServe's "
            "workers share",
            path,
            exc.strerror or exc,
        )
        return None
    return path


def token_file() -> Path:
    return home.state_dir() / "admin_token"


def log_file() -> Path:
    return home.state_dir() / "gateway.log"


def _pid_file() -> Path:
    return home.state_dir() / "gateway.pid"


def admin_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--admin-url",
        default=os.environ.get("SERVEGATE_ADMIN_URL", ADMIN_URL),
        help="the gateway's admin listener (SERVEGATE_ADMIN_URL; default: %(default)s)",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        default=token_file(),
        help="admin token (SERVEGATE_GATEWAY_ADMIN_TOKEN wins; default: %(default)s)",
    )


def run_gateway(args: argparse.Namespace) -> int:
    from gateway.settings import load_settings

    token_file = args.token_file if args.token_file.is_file() else None
    settings = load_settings(
        config=args.config,
        host=args.host,
        port=args.port,
        admin_host=args.admin_host,
        admin_port=args.admin_port,
        grpc_host=args.grpc_host,
        grpc_port=args.grpc_port,
        admin_token_file=token_file,
        workers=args.workers,
        pid_file=args.pid_file,
        control_socket=args.control_socket,
        cancel_dir=_cancel_dir(args.cancel_dir),
    )
    with _metrics_dir(settings.workers):
        # Imported only now: prometheus_client picks its multi-process mode at import time.
        from gateway.errors import ConfigError
        from gateway.server import GatewayServer

        try:
            server = GatewayServer(settings, take_over=args.take_over)
            server.run()
        except ConfigError as exc:
            log.error("refusing to start: %s", exc)
            return 2
    return 0


@contextlib.contextmanager
def _metrics_dir(workers: int) -> Iterator[None]:
    """A private PROMETHEUS_MULTIPROC_DIR for a multi-process gateway, removed at exit."""
    if workers <= 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    path = tempfile.mkdtemp(prefix="servegate-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


def start_gateway(args: argparse.Namespace) -> int:
    pid = _running_pid()
    if pid is not None:
        log.error(
            "the gateway is already running (pid %s); `servegate gateway restart` replaces it "
            "without dropping requests",
            pid,
        )
        return 1
    return _launch(args, take_over=False)


def restart_gateway(args: argparse.Namespace) -> int:
    """A new gateway takes the running one's sockets, then that one drains and exits."""
    old = _running_pid()
    if old is None:
        log.info("no gateway running: starting one")
    code = _launch(args, take_over=True)
    if code == 0 and old is not None:
        log.info("the old gateway (pid %s) finishes its requests in flight and exits", old)
    return code


def _launch(args: argparse.Namespace, *, take_over: bool) -> int:
    state = home.project_dir() / home.STATE
    state.mkdir(exist_ok=True)
    log_path, pid_path = state / "gateway.log", state / "gateway.pid"
    argv = [
        sys.executable,
        "-m",
        "servegate.cli",
        "gateway",
        "run",
        "--config",
        str(args.config),
        "--token-file",
        str(args.token_file),
        "--pid-file",
        str(pid_path),
        "--control-socket",
        str(state / "gateway.sock"),
        *(["--take-over"] if take_over else []),
    ]
    flags = ("host", "port", "admin_host", "admin_port", "grpc_host", "grpc_port", "workers")
    for flag in (*flags, "cancel_dir"):
        value = getattr(args, flag, None)  # callers such as `servegate demo` may set only some
        if value is not None:
            argv += [f"--{flag.replace('_', '-')}", str(value)]
    with log_path.open("ab") as out:
        offset = out.tell()
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    if not _wait_started(proc, pid_path, getattr(args, "start_timeout", START_TIMEOUT_S)):
        if proc.poll() is None:  # alive but never served: do not leave it behind
            proc.terminate()
            proc.wait(30)
            log.error("the gateway did not serve within its start timeout; stopped it")
        else:
            log.error("the gateway exited at start (code %s):", proc.returncode)
        for line in _new_lines(log_path, offset):
            sys.stderr.write(f"  {line}\n")
        log.error("full log in %s", log_path)
        return 1
    log.info("gateway started (pid %s), log in %s", proc.pid, log_path)
    return 0


def _wait_started(proc: subprocess.Popen[bytes], pid_path: Path, timeout_s: float) -> bool:
    """Until the gateway serves (True: it writes its pid file once it does) or exits or the
    timeout passes (False): "started" is only said of a gateway that serves, never of one that
    is about to die on its config. (Asking its port would not do: during a restart the old
    gateway answers there too.)"""
    from gateway import pidfile

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if pidfile.read(pid_path) == proc.pid:
            return True
        time.sleep(0.1)
    return False


def _new_lines(path: Path, offset: int, keep: int = 20) -> list[str]:
    """What the gateway wrote to its log during this start (its own error), last lines only."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-keep:]


def stop_gateway(args: argparse.Namespace) -> int:
    """SIGTERM: the gateway stops accepting, finishes its requests in flight (bounded by its
    longest route timeout) and exits; this waits for that."""
    from gateway import pidfile

    pid = _running_pid()
    if pid is None:
        log.info("no gateway running")
        return 0
    os.kill(pid, signal.SIGTERM)
    log.info("gateway %s is draining its requests in flight", pid)
    try:
        psutil.Process(pid).wait(timeout=STOP_TIMEOUT_S)
    except psutil.TimeoutExpired:
        log.warning("gateway %s outlived its drain; killing it", pid)
        os.kill(pid, signal.SIGKILL)
    except psutil.NoSuchProcess:
        pass
    if pidfile.read(_pid_file()) == pid:  # a gateway killed before it could remove its own
        _pid_file().unlink(missing_ok=True)
    log.info("gateway stopped")
    return 0


def _running_pid() -> int | None:
    """The serving gateway's pid. A draining one has given up the pid file: not "running"."""
    from gateway import pidfile

    pid = pidfile.read(_pid_file())
    try:
        if pid is not None and "gateway" in psutil.Process(pid).cmdline():
            return pid
    except psutil.Error:
        pass
    return None


def admin_client(args: argparse.Namespace) -> Any:
    from gateway.admin.client import AdminClient

    token = os.environ.get("SERVEGATE_GATEWAY_ADMIN_TOKEN")
    if not token:
        try:
            token = args.token_file.read_text().strip()
        except OSError:
            raise SystemExit(
                f"no admin token in {args.token_file}: `make demo` writes it beside the gateway "
                f"it starts. Run this from that checkout, set {home.HOME_ENV} to it, or pass "
                "--token-file / SERVEGATE_GATEWAY_ADMIN_TOKEN for another gateway"
            ) from None
    if not token.isprintable() or " " in token:
        raise SystemExit(f"{args.token_file} does not hold a token (one line, no spaces)")
    return AdminClient(args.admin_url.rstrip("/"), token)


def show_routes(args: argparse.Namespace) -> int:
    from gateway.admin.client import AdminClientError

    try:
        body = admin_client(args).routes()
    except AdminClientError as exc:
        log.error("%s", exc)
        return 1
    lines = [f"config version {body['version']}"]
    file = body.get("file") or {"serving": True}
    if not file["serving"]:
        lines.append(
            f"  WARNING: the config file on disk (version {file['version']}) is not what "
            f"serves: {file['error']}"
        )
    for name, route in body["routes"].items():
        readiness = body.get("readiness", {}).get(name, {})
        parts = []
        for v in route["variants"]:
            state = readiness.get(v["name"], {})
            flag = f" NOT READY: {state['detail']}" if state.get("ready") is False else ""
            parts.append(f"{v['name']}={v['weight']} ({v['model']}/{v['version']}){flag}")
        lines.append(f"  {name}: " + ", ".join(parts))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
