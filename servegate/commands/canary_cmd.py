"""``servegate canary``: set a route's weights by hand, or drive its automated analysis
(``status|start|pause|resume|promote|abort ROUTE``) through the gateway's admin API."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from servegate.commands.gateway_cmd import admin_args, admin_client

log = logging.getLogger("servegate.canary")
# argparse %-formats help strings: a literal percent sign is written %%.
ACTIONS = {
    "status": "show the analysis: phase, step, last checks, reason",
    "start": "start an analysis from the first step",
    "pause": "hold the analysis at its step (weights stay)",
    "resume": "continue a paused analysis",
    "promote": "promote the canary now (stable takes its model at 100%%)",
    "abort": "end the run now, the canary back to 0%% (the route is idle again)",
}


def register(sub: Any) -> None:
    canary: argparse.ArgumentParser = sub.add_parser(
        "canary", help="canary weights and automated canary analysis"
    )
    actions = canary.add_subparsers(dest="action", required=True)
    set_: argparse.ArgumentParser = actions.add_parser("set", help="ROUTE name=weight ...")
    set_.add_argument("route")
    set_.add_argument("weights", nargs="+", metavar="VARIANT=WEIGHT")
    admin_args(set_)
    set_.set_defaults(run=set_weights)
    for action, helptext in ACTIONS.items():
        p: argparse.ArgumentParser = actions.add_parser(action, help=helptext)
        p.add_argument("route")
        p.add_argument("--json", action="store_true", help="print the admin API's JSON")
        admin_args(p)
        p.set_defaults(run=analysis_action)


def set_weights(args: argparse.Namespace) -> int:
    from gateway.admin.client import AdminClientError

    weights: dict[str, int] = {}
    for item in args.weights:
        name, sep, value = item.partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            log.error("expected VARIANT=WEIGHT with an integer weight, got %r", item)
            return 2
        weights[name.strip()] = int(value)
    try:
        body = admin_client(args).set_weights(args.route, weights)
    except AdminClientError as exc:
        log.error("%s", exc)
        return 1
    now = ", ".join(f"{v['name']}={v['weight']}" for v in body["route"]["variants"])
    sys.stdout.write(f"{args.route}: {now} (config version {body['version']})\n")
    return 0


def analysis_action(args: argparse.Namespace) -> int:
    from gateway.admin.client import AdminClientError

    try:
        body = admin_client(args).canary(
            args.route, None if args.action == "status" else args.action
        )
    except AdminClientError as exc:
        log.error("%s", exc)
        return 1
    sys.stdout.write(json.dumps(body, indent=2) + "\n" if args.json else describe(body))
    return 0


def describe(body: dict[str, Any]) -> str:
    """The analysis in a few lines, for people."""
    route = body["route"]
    if not body.get("configured"):
        return f"{route}: no canary analysis configured (add `analysis:` to the route)\n"
    weights = ", ".join(f"{k}={v}" for k, v in body["weights"].items())
    lines = [f"{route}: {body['phase']}  ({weights})"]
    last = body.get("last_run")
    if body["phase"] in ("analysing", "paused"):
        lines.append(
            f"  step {body['step'] + 1}/{len(body['steps'])} of {body['steps']}, "
            f"interval {body['interval_s']:g}s, source {body['source']}"
        )
        lines.append(f"  failed checks {body['failed_checks']}/{body['threshold']}")
        if body.get("reason"):
            lines.append(f"  {body['last_decision']}: {body['reason']}")
        lines += _checks(body.get("last_checks", []))
    elif last is not None:
        # Idle: the finished run is history, shown as such (not as the route's state).
        lines.append(
            f"  last run: {last['outcome'].replace('_', ' ')} at {last['finished_at']}, "
            f"step {last['step'] + 1}/{len(body['steps'])} (canary at {last['weight']}%), "
            f"failed checks {last['failed_checks']}/{body['threshold']}"
        )
        lines.append(f"  {last['reason']}")
        lines += _checks(last.get("last_checks", []))
    else:
        lines.append(f"  no run yet: `servegate canary start {route}` (keep traffic flowing)")
    return "\n".join(lines) + "\n"


def _checks(checks: list[dict[str, Any]]) -> list[str]:
    lines = []
    for check in checks:
        value = "n/a" if check["value"] is None else f"{check['value']:.6g}"
        verdict = {True: "pass", False: "FAIL"}.get(check["passed"], check["detail"] or "no data")
        lines.append(f"  - {check['name']}: {value} (want {check['bound']}) {verdict}")
    return lines
