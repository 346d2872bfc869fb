"""``servegate rollout MODEL --version V``: a new model version from its verified archive to a
running canary, and on to promotion or rollback (``servegate.rollout``);
``servegate rollout status [ROUTE]`` and ``servegate rollout abort ROUTE``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from export.formats import FORMATS
from servegate import home
from servegate.commands.gateway_cmd import admin_args, admin_client

log = logging.getLogger("servegate.rollout")
EXIT_PROMOTED, EXIT_REFUSED, EXIT_ROLLED_BACK = 0, 1, 3

DESCRIPTION = """\
Roll a new version of a model out with no downtime: load its verified archive into the running
TorchServe beside every model there, warm it up, put it in the route's canary variant at weight
0 (admin API, audited), wait until the gateway sees it ready, and start the route's canary
analysis, which steps the traffic up and promotes it or rolls it back. After a promotion the
previous version is unloaded once the grace period is over; after a rollback (or an abort) the
route is put back exactly as it was and the new version unloaded. A version whose archive fails
its pin, its manifest, its export report's parity or its warm-up is refused before any traffic
moves."""
EPILOG = """\
  servegate rollout minilm --version 2.0 --format onnx     follow it to the end
  servegate rollout status minilm                          where it is (from any shell)
  servegate rollout abort minilm                           stop it; the route goes back

exit status: 0 promoted, 1 refused or failed, 3 rolled back or aborted (route restored).
docs/rollout.md has the details."""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "rollout",
        help="roll out a new model version: register, warm up, canary, promote or roll back",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("what", metavar="MODEL|status|abort", help="the exported model to roll out")
    p.add_argument("route", nargs="?", help="status/abort: the route (default: every rollout)")
    p.add_argument(
        "--version", dest="model_version", metavar="V", help="the version to roll out, e.g. 2.0"
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        metavar="F",
        help=f"which exported format, one of {', '.join(FORMATS)} (needed when several are)",
    )
    p.add_argument("--route", dest="route_opt", metavar="R", help="the route (default: MODEL)")
    p.add_argument(
        "--store",
        type=Path,
        help="where the archive is (default: the store the running TorchServe serves)",
    )
    p.add_argument("--pins", type=Path, help="its pin file (default: the store's)")
    p.add_argument(
        "--workdir",
        type=Path,
        default=home.state_dir() / "torchserve",
        help="the running TorchServe's working directory (default: %(default)s)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds after a promotion before the previous version is unloaded "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=120.0,
        help="seconds for the gateway to see the new variant ready (default: %(default)s)",
    )
    p.add_argument(
        "--no-follow",
        action="store_true",
        help="return once the analysis runs (then no retirement or restore happens here: "
        "`servegate rollout abort` puts the route back)",
    )
    p.add_argument("--json", action="store_true", help="status: print the state as JSON")
    admin_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.what == "status":
        return status(args)
    if args.what == "abort":
        return abort(args)
    if not args.model_version:
        log.error("give the version to roll out: servegate rollout %s --version V", args.what)
        return 2
    return rollout(args)


def _store() -> Any:
    from servegate.rollout.state import RolloutStore

    return RolloutStore(home.state_dir() / "rollouts")


def _machine(args: argparse.Namespace, store: Path | None = None) -> Any:
    from servegate.rollout.steps import Rollout, Timing
    from servegate.torchserve.registry import Instance, Registry

    instance = Instance.find(args.workdir)
    if store is not None or args.pins is not None:
        from servegate.pins import pin_file_for

        source = store or instance.store
        instance = Instance(
            workdir=instance.workdir,
            store=source,
            pin_file=args.pins or pin_file_for(source),
            inference_url=instance.inference_url,
            management_url=instance.management_url,
            model_api=instance.model_api,
        )

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    return Rollout(
        admin=admin_client(args),
        registry=Registry(instance),
        store=_store(),
        timing=Timing(grace_s=args.grace, ready_timeout_s=args.ready_timeout),
        say=say,
    )


def rollout(args: argparse.Namespace) -> int:
    from gateway.admin.client import AdminClientError
    from servegate.rollout import candidate
    from servegate.rollout.candidate import RolloutRefused
    from servegate.torchserve.registry import RegistryError

    route = args.route_opt or args.route or args.what
    try:
        machine = _machine(args, args.store)
        instance = machine.registry.instance
        found = candidate.find(
            instance.store, instance.pin_file, args.what, args.model_version, args.format
        )
        state = machine.begin(route, found)
        if args.no_follow:
            return 0
        state = machine.follow(state)
    except (RolloutRefused, RegistryError, AdminClientError) as exc:
        log.error("rollout refused: %s", exc)
        return EXIT_REFUSED
    sys.stdout.write(describe(state))
    if state.phase == "promoted":
        return EXIT_PROMOTED
    return EXIT_ROLLED_BACK if state.phase in ("rolled_back", "aborted") else EXIT_REFUSED


def status(args: argparse.Namespace) -> int:
    states = _store().all()
    if args.route:
        states = [s for s in states if s.route == args.route]
    if args.json:
        sys.stdout.write(json.dumps([s.model_dump(mode="json") for s in states], indent=2) + "\n")
        return 0
    if not states:
        sys.stdout.write(
            "no rollout recorded" + (f" for {args.route}" if args.route else "") + "\n"
        )
        return 0
    sys.stdout.write("".join(describe(s) for s in states))
    return 0


def abort(args: argparse.Namespace) -> int:
    from gateway.admin.client import AdminClientError
    from servegate.torchserve.registry import RegistryError

    if not args.route:
        log.error("which route? servegate rollout abort ROUTE")
        return 2
    try:
        state = _machine(args).abort(args.route)
    except (RegistryError, AdminClientError) as exc:
        log.error("%s", exc)
        return 1
    if state is None:
        sys.stdout.write(f"no rollout of {args.route} recorded\n")
        return 0
    sys.stdout.write(describe(state))
    return 0


def describe(state: Any) -> str:
    from servegate.rollout.state import alive

    running = "" if state.final or alive(state.pid) else " (its command is gone: abort it)"
    lines = [
        f"{state.route}: {state.model} {state.version} ({state.format}, "
        f"{state.served_model}/{state.served_version}) {state.phase}{running}",
        f"  started {state.started_at}, canary variant {state.canary}",
    ]
    if state.first_canary_request_s is not None:
        lines.append(f"  first canary request after {state.first_canary_request_s:.1f} s")
    if state.final and state.route_restored is not None:
        lines.append(f"  route restored exactly: {'yes' if state.route_restored else 'NO'}")
    if state.retired:
        lines.append(f"  unloaded: {state.retired}")
    lines += [f"  +{e.at_s:7.1f}s  {e.what}" for e in state.events]
    return "\n".join(lines) + "\n"
