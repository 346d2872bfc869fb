"""Issue 20's served targets on one GPU, every row in one run, so that every ratio is taken
against TorchServe's own ceiling measured minutes before on the same machine.

Rows (``--rows`` picks some; each runs ``--warmup-s`` of load, then ``--seconds`` timed):

- ``ceiling``: TorchServe's no-op handler (``bench/noop_handler.py``), one small JSON item per
  request, straight to TorchServe: its own ceiling in req/s.
- ``MODEL_x1``: one item per request (a JPEG for ``resnet50``, a 128-token text for ``minilm``)
  through the gateway, TorchServe batching dynamically; ``MODEL_x1_coalesced``: the same load
  (same concurrency) on a route that coalesces (``coalesce: {max_items, max_wait_ms}``).
- ``MODEL_xN`` (``--items``, 32): N items per request through the gateway; MiniLM's answers as
  OIP v2 binary tensors (``minilm_x32_binary``) and as native JSON (``minilm_x32_json``).
- ``ceiling_gateway``: the no-op handler through the gateway, what the gateway alone passes.

Each row reports req/s, items/s, p50/p99, errors, the cores used by the client, the gateway,
TorchServe's frontend and its workers and the whole machine (in the timed window), the GPU's
utilisation, and how many requests reached TorchServe per client request (below 1: coalesced).
Results are written to ``--out`` after every row, so a row that fails or a run cut short keeps
the others; a markdown table goes to stdout at the end.

    python -m bench.gpu_targets --out $OUT/targets.json [--device cuda] [--models resnet50,minilm]
        [--format compile --precision bf16] [--seconds 10] [--rows ceiling,resnet50_x1,...]
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("bench")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the JSON results (logs beside it)")
    p.add_argument("--models", default="resnet50,minilm")
    p.add_argument("--rows", default="", help="comma-separated row names; empty: all")
    p.add_argument("--device", default="cuda", help="where to export (cpu: a dry run)")
    p.add_argument("--format", default="compile")
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--fallback", default="torchscript", help="format if the first fails; ''")
    p.add_argument("--gpu-workers", type=int, default=8, help="TorchServe workers per model")
    p.add_argument("--batch-size", type=int, default=32, help="TorchServe batch (requests)")
    p.add_argument("--delay-ms", type=int, default=5, help="TorchServe max batch delay")
    p.add_argument("--job-queue", type=int, default=1024, help="TorchServe job_queue_size")
    p.add_argument("--ceiling-workers", type=int, default=8)
    p.add_argument("--ceiling-batch", type=int, default=1)
    p.add_argument("--ceiling-concurrency", type=int, default=96)
    p.add_argument("--gateway-workers", type=int, default=6, help="gateway processes")
    p.add_argument("--clients", type=int, default=4, help="load generator processes")
    p.add_argument("--concurrency", type=int, default=128, help="in flight, one-item rows")
    p.add_argument("--concurrency-multi", type=int, default=32, help="in flight, --items rows")
    p.add_argument("--items", type=int, default=32, help="items per request, multi-item rows")
    p.add_argument("--coalesce-items", type=int, default=32)
    p.add_argument("--coalesce-wait-ms", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup-s", type=float, default=5.0)
    p.add_argument("--budget-s", type=float, default=530.0, help="rows past it are skipped")
    p.add_argument(
        "--worker-compile-threads", type=int, default=1, help="Inductor's, per worker; 0: its own"
    )
    p.add_argument("--export-timeout-s", type=float, default=240.0, help="per model and format")
    p.add_argument("--ready-timeout-s", type=float, default=240.0, help="for all workers")
    p.add_argument(
        "--stages", action="store_true", help="also time the handler's stages per model (ms)"
    )
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.rows = [r for r in args.rows.split(",") if r]
    return args


def environment(args: argparse.Namespace) -> dict[str, Any]:
    import os
    from importlib import metadata

    import torch

    env: dict[str, Any] = {"torch": torch.__version__, "cpu_cores": os.cpu_count()}
    for package in ("torchvision", "transformers", "torchserve", "aiohttp"):
        try:
            env[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            env[package] = None
    if args.device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll
    # `timeout` sends SIGTERM: unwind, so TorchServe and the gateway are stopped and the
    # results written so far stay on disk.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from bench.targets_run import Run

    started = time.monotonic()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-targets-") as tmp:
        run = Run(args, Path(tmp), started)
        run.results["environment"] = environment(args)
        try:
            run.execute()
        finally:
            run.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
