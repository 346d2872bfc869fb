"""``servegate demo --rollout 2.0`` (``make demo-rollout``): after ``make demo``, export minilm
version 2.0 in ONNX (unless it is pinned already) and roll it out with ``servegate rollout``
while 20 requests a second flow through the gateway; then print what each variant answered
(failed requests counted) and the audit log's story of the rollout."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from servegate import home, pins
from servegate.commands import gateway_cmd, rollout_cmd

if TYPE_CHECKING:
    from export.formats import Format

log = logging.getLogger("servegate.demo")
FORMAT: Format = "onnx"


def run(args: argparse.Namespace, model: str, gateway_url: str) -> int:
    try:
        if httpx.get(f"{gateway_url}/v2/health/ready", timeout=5).status_code != 200:
            raise httpx.ConnectError("not ready")
    except httpx.HTTPError:
        log.error("the demo stack is not running: `make demo` first")
        return 1
    if (code := _export(args.store, model, args.rollout)) != 0:
        return code
    since = datetime.now(UTC).isoformat(timespec="milliseconds")
    load = Load(f"{gateway_url}/predictions/{model}", rate=args.rate)
    load.start()
    time.sleep(2)  # traffic before the rollout begins, through it, and after
    rollout = argparse.Namespace(
        what=model,
        route=None,
        route_opt=model,
        model_version=args.rollout,
        format=FORMAT,
        store=None,  # the store the running TorchServe serves (it recorded it)
        pins=None,
        workdir=args.workdir,
        grace=args.grace,
        ready_timeout=120.0,
        no_follow=False,
        json=False,
        admin_url=gateway_cmd.ADMIN_URL,
        token_file=home.project_dir() / home.STATE / "admin_token",
    )
    try:
        code = rollout_cmd.rollout(rollout)
        time.sleep(2)
    finally:
        load.stop()
    _report(load, args.config, since)
    return code


def _export(store: Path, model: str, version: str) -> int:
    pinned = pins.read(pins.pin_file_for(store)).archives
    if any(
        p.model == model and p.version == version and p.format == FORMAT for p in pinned.values()
    ):
        log.info("%s %s (%s) is exported and pinned already in %s", model, version, FORMAT, store)
        return 0
    from export.pipeline import ExportRequest
    from export.timing import TimingPlan
    from servegate.commands.export_cmd import export_and_report

    log.info("exporting %s version %s (%s) beside version 1.0", model, version, FORMAT)
    request = ExportRequest(
        model=model,
        out=store,
        formats=(FORMAT,),
        timing=TimingPlan(budget_s=1.0),
        version=version,
    )
    return export_and_report(request)


class Load:
    """Requests at ``rate`` per second from a thread, each one's variant and status kept."""

    def __init__(self, url: str, rate: float) -> None:
        self.url, self.rate = url, rate
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        feeder = threading.Thread(target=self._feed, daemon=True)
        feeder.start()
        self._threads.append(feeder)

    def stop(self) -> None:
        self._stop.set()
        for t in list(self._threads):
            t.join(60)

    def _feed(self) -> None:
        began, i = time.monotonic(), 0
        while not self._stop.is_set():
            t = threading.Thread(target=self._one, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
            i += 1
            time.sleep(max(0.0, began + i / self.rate - time.monotonic()))

    def _one(self, i: int) -> None:
        body = {"inputs": [f"rollout demo request {i}: servegate moves traffic between versions"]}
        try:
            resp = httpx.post(self.url, json=body, headers={"X-User-Id": f"user-{i}"}, timeout=60)
            key = (resp.headers.get("x-servegate-variant", "-"), str(resp.status_code))
        except httpx.HTTPError as exc:
            key = ("-", type(exc).__name__)
        self.outcomes[key] += 1


def _report(load: Load, config: Path, since: str) -> None:
    out = sys.stdout
    total = sum(load.outcomes.values())
    failed = sum(n for (_, status), n in load.outcomes.items() if status != "200")
    out.write(f"\n{total} requests through the gateway during the rollout, {failed} failed:\n")
    for (variant, status), n in sorted(load.outcomes.items()):
        out.write(f"  {variant:<10} HTTP {status:<6} {n}\n")
    audit_log = config.with_name(config.name + ".audit.jsonl")
    out.write(f"\nThe audit log ({audit_log.resolve()}) since the rollout began:\n")
    try:
        lines = audit_log.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        entry = json.loads(line)
        if entry["time"] >= since:
            out.write(
                f"  {entry['time'][11:23]} {entry['who']:<16} {entry['action']:<15} "
                f"{entry['new']}  {entry['reason']}\n"
            )
    out.write(
        "\n`servegate rollout status minilm` shows the rollout's steps; the status page "
        "(http://127.0.0.1:8001/) shows each variant's model and version.\n"
    )
