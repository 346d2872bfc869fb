"""``servegate serve`` starts TorchServe on the archives of a model store and waits until every
model is ready; ``servegate stop`` stops the instance started from the same working directory.

``--foreground`` is for containers: after start it stays attached, exits non-zero when TorchServe
dies (so the orchestrator restarts it) and stops TorchServe on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from servegate import home
from servegate.torchserve.process import ServeError, TorchServe
from servegate.torchserve.settings import Ports, TorchServeSettings

log = logging.getLogger("servegate.serve")


def register(sub: Any) -> None:
    serve: argparse.ArgumentParser = sub.add_parser(
        "serve", help="start TorchServe on the model store"
    )
    serve.add_argument(
        "--store",
        type=Path,
        default=Path("model_store"),
        help="directory of .mar archives (default: %(default)s)",
    )
    serve.add_argument(
        "--workdir",
        type=Path,
        default=home.project_dir() / home.STATE / "torchserve",
        help="TorchServe's working directory: config, keys, logs (default: %(default)s)",
    )
    serve.add_argument(
        "--pins",
        type=Path,
        default=None,
        help="the pin file `servegate export` wrote: each archive's SHA-256, kept outside the "
        "store (default: beside the store, STORE.pins.json); an archive without a matching "
        "pin is refused",
    )
    serve.add_argument("--models", default="", help="comma-separated archive names (default: all)")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address of inference, metrics and gRPC inference (0.0.0.0 in a container); "
        "management always stays on 127.0.0.1",
    )
    for name, default in Ports().model_dump().items():
        serve.add_argument(
            f"--{name.replace('_', '-')}-port",
            type=int,
            default=default,
            dest=f"port_{name}",
            help=f"TorchServe's {name.replace('_', ' ')} port (default: %(default)s)",
        )
    serve.add_argument(
        "--ready-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for every model to load (default: %(default)s)",
    )
    serve.add_argument(
        "--token-expiration-min",
        type=int,
        default=60,
        help="lifetime of TorchServe's inference/management keys; the gateway renews them "
        "where it reaches the management port (default: %(default)s)",
    )
    serve.add_argument(
        "--no-token-auth",
        dest="token_auth",
        action="store_false",
        help="turn TorchServe's token authorization off: only where a network policy lets "
        "nothing but the gateway reach it (Kubernetes, see deploy/k8s)",
    )
    serve.add_argument(
        "--no-model-api",
        dest="model_api",
        action="store_false",
        help="keep TorchServe's register/delete API off: no live registration "
        "(`servegate rollout`); it is always off without token authorization",
    )
    serve.add_argument(
        "--cancel-dir",
        type=Path,
        default=home.cancel_dir(),
        help="where the gateway leaves a streaming client's cancel marker for the generation "
        "workers: the gateway's --cancel-dir, the same directory (default: %(default)s)",
    )
    serve.add_argument(
        "--foreground",
        action="store_true",
        help="stay attached until TorchServe exits; SIGTERM stops it (container entry point)",
    )
    serve.set_defaults(run=run_serve)

    stop: argparse.ArgumentParser = sub.add_parser(
        "stop", help="stop what `servegate serve` started"
    )
    stop.add_argument(
        "--workdir",
        type=Path,
        default=home.state_dir() / "torchserve",
        help="the working directory `servegate serve` used (default: %(default)s)",
    )
    stop.set_defaults(run=run_stop)


def settings_from(args: argparse.Namespace) -> TorchServeSettings:
    ports = Ports(
        **{k.removeprefix("port_"): v for k, v in vars(args).items() if k.startswith("port_")}
    )
    models = tuple(m.strip().removesuffix(".mar") for m in args.models.split(",") if m.strip())
    return TorchServeSettings(
        store=args.store,
        workdir=args.workdir,
        pins=args.pins,
        models=models,
        host=args.host,
        ports=ports,
        ready_timeout_s=args.ready_timeout,
        token_expiration_min=args.token_expiration_min,
        token_auth=args.token_auth,
        model_api=args.model_api,
        cancel_dir=args.cancel_dir.resolve(),
    )


def run_serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    server = TorchServe(settings)
    # In the foreground a SIGTERM during start-up must stop TorchServe too, not orphan it.
    stopping = _stop_on_signals() if args.foreground else None
    try:
        server.start()
        statuses = server.wait_ready()
    except ServeError as exc:
        log.error("%s", exc)
        server.stop()
        return 1
    p = settings.ports
    sys.stdout.write(
        f"TorchServe is ready: {', '.join(s.name for s in statuses)}\n"
        f"  inference   {settings.url('inference')}/predictions/<model>\n"
        f"  management  {settings.url('management')} (register/delete API "
        + (
            "on, from the checked store only: servegate rollout)\n"
            if settings.model_api_on
            else "off)\n"
        )
        + f"  metrics     {settings.url('metrics')}/metrics\n"
        f"  gRPC        {settings.host}:{p.grpc_inference} (inference), "
        f"{p.grpc_management} (management)\n"
        + (
            f"  key file    {settings.key_file.resolve()} "
            "(token authorization is on; the gateway reads it)\n"
            if settings.token_auth
            else "  token authorization is OFF: only the gateway may reach this TorchServe\n"
        )
        + f"  logs        {settings.logdir.resolve()}\n"
        + (
            "Running in the foreground; SIGTERM stops it.\n"
            if args.foreground
            else f"Stop it with `make stop` (servegate stop --workdir {settings.workdir}).\n"
        )
    )
    sys.stdout.flush()
    return supervise(server, stopping) if stopping is not None else 0


def _stop_on_signals() -> threading.Event:
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    return stopping


def supervise(server: TorchServe, stopping: threading.Event, poll_s: float = 1.0) -> int:
    """Block until ``stopping`` is set (SIGTERM/SIGINT: stop TorchServe, 0) or until
    TorchServe dies (1)."""
    while not stopping.wait(poll_s):
        if server.pid() is None:
            log.error("TorchServe exited; see %s", server.settings.logdir.resolve())
            return 1
    log.info("stopping TorchServe")
    server.stop()
    return 0


def run_stop(args: argparse.Namespace) -> int:
    settings = TorchServeSettings(store=Path("."), workdir=args.workdir)
    if TorchServe(settings).stop():
        log.info("TorchServe from %s stopped", args.workdir)
    else:
        log.info("no TorchServe running from %s", args.workdir)
    return 0
