"""``servegate demo``: the platform's main job on the built-in ``minilm``.

Export MiniLM to verified TorchScript and ONNX archives (skipped when they already exist),
start TorchServe on them, send a few hundred embedding requests, print what each archive
served and how fast, and leave the stack running for you to try.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from servegate.torchserve.process import ServeError, TorchServe
from servegate.torchserve.settings import TorchServeSettings

if TYPE_CHECKING:
    from handlers.manifest import Format

log = logging.getLogger("servegate.demo")
MODEL = "minilm"
FORMATS: tuple[Format, ...] = ("torchscript", "onnx")
SENTENCES = [
    "servegate exports PyTorch models and serves them with TorchServe.",
    "A canary gets a small share of the traffic first.",
    "Embeddings from every format are checked against eager PyTorch.",
    "Ünïcödé text is fine too — 日本語も大丈夫です.",
]


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo", help="export minilm, serve it, send requests"
    )
    p.add_argument("--store", type=Path, default=Path("model_store"))
    p.add_argument("--workdir", type=Path, default=Path(".servegate/torchserve"))
    p.add_argument("--requests", type=int, default=300)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    archives = [f"{MODEL}_{fmt}" for fmt in FORMATS]
    if not all((args.store / f"{a}.mar").is_file() for a in archives):
        from export.pipeline import ExportRequest
        from export.timing import TimingPlan
        from servegate.commands.export_cmd import export_and_report

        request = ExportRequest(
            model=MODEL, out=args.store, formats=FORMATS, timing=TimingPlan(budget_s=1.0)
        )
        code = export_and_report(request)
        if code != 0:
            return code
    else:
        log.info(
            "using the archives already in %s (re-export: make export MODEL=%s)", args.store, MODEL
        )
    settings = TorchServeSettings(store=args.store, workdir=args.workdir, models=tuple(archives))
    server = TorchServe(settings)
    if server.pid() is not None:
        log.info("TorchServe from %s is already running; stopping it first", args.workdir)
        server.stop()
    try:
        server.start()
        server.wait_ready()
    except ServeError as exc:
        log.error("%s", exc)
        server.stop()
        return 1
    results = {a: _load(settings, server, a, args.requests // len(archives)) for a in archives}
    out = sys.stdout
    out.write(f"\n{'archive':<20}{'requests':>9}{'ok':>6}{'p50 ms':>9}{'p99 ms':>9}\n")
    for archive, (ok, latencies) in results.items():
        p50, p99 = _pct(latencies, 50), _pct(latencies, 99)
        out.write(f"{archive:<20}{len(latencies):>9}{ok:>6}{p50:>9.1f}{p99:>9.1f}\n")
    out.write(
        f"\nTorchServe keeps running: {settings.url('inference')}/predictions/{archives[0]}\n"
        f"  (token auth on: key in {settings.key_file.resolve()}), metrics at "
        f"{settings.url('metrics')}/metrics\nStop everything with `make stop`.\n"
    )
    return 0


def _load(
    settings: TorchServeSettings, server: TorchServe, archive: str, n: int
) -> tuple[int, list[float]]:
    url = f"{settings.url('inference')}/predictions/{archive}"
    headers = {"Authorization": f"Bearer {server.keys().inference.key}"}
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=8)) as client:

        def one(i: int) -> tuple[bool, float]:
            started = time.perf_counter()
            resp = client.post(
                url, json={"inputs": [SENTENCES[i % len(SENTENCES)]]}, headers=headers
            )
            return resp.status_code == 200, (time.perf_counter() - started) * 1000

        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(one, range(n)))
    return sum(ok for ok, _ in outcomes), [ms for _, ms in outcomes]


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]
