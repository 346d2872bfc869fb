"""``servegate serve`` starts TorchServe on the archives of a model store and waits until every
model is ready; ``servegate stop`` stops the instance started from the same working directory."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from servegate.torchserve.process import ServeError, TorchServe
from servegate.torchserve.settings import Ports, TorchServeSettings

log = logging.getLogger("servegate.serve")
DEFAULT_WORKDIR = Path(".servegate/torchserve")


def register(sub: Any) -> None:
    serve: argparse.ArgumentParser = sub.add_parser(
        "serve", help="start TorchServe on the model store"
    )
    serve.add_argument("--store", type=Path, default=Path("model_store"))
    serve.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    serve.add_argument("--models", default="", help="comma-separated archive names (default: all)")
    serve.add_argument("--host", default="127.0.0.1")
    for name, default in Ports().model_dump().items():
        serve.add_argument(
            f"--{name.replace('_', '-')}-port", type=int, default=default, dest=f"port_{name}"
        )
    serve.add_argument("--ready-timeout", type=float, default=300.0)
    serve.set_defaults(run=run_serve)

    stop: argparse.ArgumentParser = sub.add_parser(
        "stop", help="stop what `servegate serve` started"
    )
    stop.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    stop.set_defaults(run=run_stop)


def settings_from(args: argparse.Namespace) -> TorchServeSettings:
    ports = Ports(
        **{k.removeprefix("port_"): v for k, v in vars(args).items() if k.startswith("port_")}
    )
    models = tuple(m.strip().removesuffix(".mar") for m in args.models.split(",") if m.strip())
    return TorchServeSettings(
        store=args.store,
        workdir=args.workdir,
        models=models,
        host=args.host,
        ports=ports,
        ready_timeout_s=args.ready_timeout,
    )


def run_serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    server = TorchServe(settings)
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
        f"  management  {settings.url('management')} (register/delete API off)\n"
        f"  metrics     {settings.url('metrics')}/metrics\n"
        f"  gRPC        {settings.host}:{p.grpc_inference} (inference), "
        f"{p.grpc_management} (management)\n"
        f"  key file    {settings.key_file.resolve()} "
        "(token authorization is on; the gateway reads it)\n"
        f"  logs        {settings.logdir.resolve()}\n"
        f"Stop it with `make stop` (servegate stop --workdir {settings.workdir}).\n"
    )
    return 0


def run_stop(args: argparse.Namespace) -> int:
    settings = TorchServeSettings(store=Path("."), workdir=args.workdir)
    if TorchServe(settings).stop():
        log.info("TorchServe from %s stopped", args.workdir)
    else:
        log.info("no TorchServe running from %s", args.workdir)
    return 0
