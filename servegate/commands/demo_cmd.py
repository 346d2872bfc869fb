"""``servegate demo``: the platform's main job on the built-in ``minilm``.

1. Export MiniLM to verified TorchScript and ONNX archives (skipped when they exist).
2. Start TorchServe on them, and the gateway in front with route ``minilm`` split
   ``stable`` (TorchScript) 90 / ``canary`` (ONNX) 10 (``gateway.yaml``, written if absent).
3. Send a few hundred embedding requests through the gateway and print what each variant
   served and how fast, then leave the stack running. ``make stop`` stops it.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import secrets
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from servegate import home, pins
from servegate.commands import gateway_cmd
from servegate.torchserve.process import ServeError, TorchServe
from servegate.torchserve.settings import TorchServeSettings

if TYPE_CHECKING:
    from export.formats import Format

log = logging.getLogger("servegate.demo")
MODEL = "minilm"
FORMATS: tuple[Format, ...] = ("torchscript", "onnx")
GATEWAY_URL = "http://127.0.0.1:8000"
SENTENCES = [
    "servegate exports PyTorch models and serves them with TorchServe.",
    "A canary gets a small share of the traffic first.",
    "Embeddings from every format are checked against eager PyTorch.",
    "Ünïcödé text is fine too — 日本語も大丈夫です.",
]
DEMO_CONFIG = """\
# gateway.yaml, written by `make demo` (servegate demo). Edit it while the gateway runs: a valid
# change applies at once, an invalid one is rejected and the last good config keeps serving.
# `servegate canary set minilm stable=80 canary=20` changes the weights through the admin API.
# gateway.example.yaml documents every field.
backends:
  local:
    inference_url: http://127.0.0.1:8080
    metrics_url: http://127.0.0.1:8082
    grpc_address: 127.0.0.1:7070
    key_file: {workdir}/key_file.json
    management_url: http://127.0.0.1:8081   # renews the inference key when it expires
    model_store: {store}

routes:
  minilm:
    variants:
      - name: stable          # TorchScript
        backend: local
        model: minilm_torchscript
        version: "1.0"
        weight: 90
      - name: canary          # ONNX Runtime
        backend: local
        model: minilm_onnx
        version: "1.0"
        weight: 10
    sticky:
      header: X-User-Id       # the same user keeps the same variant
    pin_header: X-Servegate-Variant
    timeout_s: 30
    shadow:                   # copies 10% of stable's requests to the canary and compares
      variant: canary         # the embeddings (servegate_canary_divergence)
      percent: 10
      compare: cosine
    analysis:                 # automated canary analysis, idle until
      canary: canary          # `servegate canary start minilm` (keep traffic flowing)
      interval_s: 10
      steps: [25, 50, 100]
      min_requests: 20
      threshold: 2
      checks:
        error_rate:
          max: 0.01
        latency:
          p99_max_ratio: 3.0
        divergence:
          min: 0.999
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo", help="export minilm, serve it behind the gateway, send it traffic"
    )
    p.add_argument(
        "--store",
        type=Path,
        default=Path("model_store"),
        help="archives: minilm is exported here when absent (default: %(default)s)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=home.project_dir() / home.STATE / "torchserve",
        help="TorchServe's working directory (default: %(default)s)",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=Path("gateway.yaml"),
        help="the gateway's config, written when absent (default: %(default)s)",
    )
    p.add_argument(
        "--rollout",
        metavar="VERSION",
        help="after `make demo`: export minilm VERSION in ONNX and roll it out with "
        "`servegate rollout` under load (make demo-rollout)",
    )
    p.add_argument(
        "--rate", type=float, default=20.0, help="--rollout: requests a second (default: 20)"
    )
    p.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="--rollout: seconds before the previous version is unloaded (default: 10)",
    )
    p.add_argument(
        "--requests",
        type=int,
        default=300,
        help="requests sent through the gateway (default: %(default)s)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.rollout:
        from servegate.commands import demo_rollout

        return demo_rollout.run(args, MODEL, GATEWAY_URL)
    code = _ensure_archives(args.store)
    if code != 0:
        return code
    if (code := _start_torchserve(args)) != 0:
        return code
    if (code := _start_gateway(args)) != 0:
        return code
    results = _traffic(args.requests)
    _report(results, args)
    return 0


def _ensure_archives(store: Path) -> int:
    """Export minilm unless every archive is there and pinned (an archive from before pins, or
    copied in, would be refused by `servegate serve`: export it again instead)."""
    try:
        pinned = pins.read(pins.pin_file_for(store)).archives if store.is_dir() else {}
    except pins.PinError as exc:
        log.warning("%s; exporting again", exc)
        pinned = {}
    names = [f"{MODEL}_{fmt}.mar" for fmt in FORMATS]
    if all((store / n).is_file() and n in pinned for n in names):
        log.info("using the archives already in %s (re-export: make export MODEL=%s)", store, MODEL)
        return 0
    from export.pipeline import ExportRequest
    from export.timing import TimingPlan
    from servegate.commands.export_cmd import export_and_report

    request = ExportRequest(
        model=MODEL, out=store, formats=FORMATS, timing=TimingPlan(budget_s=1.0)
    )
    return export_and_report(request)


def _start_torchserve(args: argparse.Namespace) -> int:
    archives = _archives_to_load(args.config)
    settings = TorchServeSettings(
        store=args.store, workdir=args.workdir, models=archives, cancel_dir=home.cancel_dir()
    )
    server = TorchServe(settings)
    if server.pid() is not None:
        log.info("TorchServe from %s is already running; restarting it", args.workdir)
        server.stop()
    try:
        server.start()
        server.wait_ready()
    except ServeError as exc:
        log.error("%s", exc)
        server.stop()
        return 1
    return 0


def _archives_to_load(config: Path) -> tuple[str, ...]:
    """Version 1.0 of the demo's formats and whatever version the gateway's config routes to
    (after `make demo-rollout` promoted 2.0, say). Other versions stay unloaded, so that a
    rollout can register them."""
    names = {f"{MODEL}_{fmt}" for fmt in FORMATS}
    if config.exists():
        from gateway.config import load_config
        from gateway.errors import ConfigError
        from handlers.manifest import archive_file_name

        try:
            routes = list(load_config(config).config.routes.values())
        except ConfigError as exc:
            log.warning("%s; loading version 1.0 only", exc)
            routes = []
        for route in routes:
            for v in route.variants:
                names.add(archive_file_name(v.model, v.version).removesuffix(".mar"))
    return tuple(sorted(names))


def _start_gateway(args: argparse.Namespace) -> int:
    if not args.config.exists():
        # Paths relative to the config's folder (the gateway anchors them there): the file
        # stays true if the checkout moves.
        here = args.config.resolve().parent
        args.config.write_text(
            DEMO_CONFIG.format(
                workdir=os.path.relpath(args.workdir.resolve(), here),
                store=os.path.relpath(args.store.resolve(), here),
            )
        )
        log.info("wrote %s (minilm: stable 90 / canary 10)", args.config)
    token_file = home.project_dir() / home.STATE / "admin_token"
    if not token_file.exists():
        token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
        log.info("generated the admin token in %s (mode 600)", token_file)
    gateway_cmd.stop_gateway(args)
    start = argparse.Namespace(
        config=args.config,
        token_file=token_file,
        host=None,
        port=None,
        admin_host=None,
        admin_port=None,
    )
    if gateway_cmd.start_gateway(start) != 0:
        return 1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{GATEWAY_URL}/v2/health/ready", timeout=2).status_code == 200:
                return 0
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    log.error("the gateway did not become ready; see %s", gateway_cmd.log_file())
    return 1


def _traffic(n: int) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = defaultdict(list)
    with httpx.Client(base_url=GATEWAY_URL, timeout=60) as client:

        def one(i: int) -> tuple[str, float]:
            user = f"user-{random.randrange(10_000)}"
            started = time.perf_counter()
            resp = client.post(
                f"/predictions/{MODEL}",
                json={"inputs": [SENTENCES[i % len(SENTENCES)]]},
                headers={"X-User-Id": user},
            )
            elapsed = (time.perf_counter() - started) * 1000
            variant = resp.headers.get("x-servegate-variant", "-")
            return (
                variant if resp.status_code == 200 else f"{variant} ({resp.status_code})"
            ), elapsed

        with ThreadPoolExecutor(max_workers=8) as pool:
            for variant, ms in pool.map(one, range(n)):
                latencies[variant].append(ms)
    return latencies


def _report(results: dict[str, list[float]], args: argparse.Namespace) -> None:
    total = sum(len(v) for v in results.values())
    out = sys.stdout
    out.write(f"\n{total} requests to /predictions/{MODEL} through the gateway:\n")
    out.write(f"  {'variant':<16}{'requests':>9}{'share':>8}{'p50 ms':>9}{'p99 ms':>9}\n")
    for variant, ms in sorted(results.items()):
        share = 100 * len(ms) / total
        out.write(
            f"  {variant:<16}{len(ms):>9}{share:>7.1f}%{_pct(ms, 50):>9.1f}{_pct(ms, 99):>9.1f}\n"
        )
    cli = Path(sys.executable).with_name("servegate")
    token = gateway_cmd.token_file()
    out.write(
        "\nThe stack keeps running:\n"
        f"  gateway      {GATEWAY_URL}/predictions/{MODEL}   (and OIP v2 at {GATEWAY_URL}/v2)\n"
        "  gRPC         127.0.0.1:9000  (TorchServe's gRPC inference API and OIP v2)\n"
        f"  status page  http://127.0.0.1:8001/\n"
        f"  metrics      http://127.0.0.1:8001/metrics\n"
        f"  admin API    http://127.0.0.1:8001/admin/routes  (token in {token})\n"
        f"  config       {args.config.resolve()}  (edit it: the gateway reloads it)\n"
        f"  logs         {gateway_cmd.log_file()}, {args.workdir.resolve() / 'logs'}/\n"
        f"\nThe servegate CLI is {cli}\n"
        f"(not on PATH; `source {cli.parent}/activate` puts it there). From any directory:\n"
        f"  {cli} routes\n"
        f"  {cli} canary set {MODEL} stable=80 canary=20\n"
        f"  {cli} canary start {MODEL}    (then `canary status {MODEL}`: automated analysis\n"
        "      steps the canary up while traffic flows, promotes or rolls back)\n"
        "Try (X-User-Id keeps a user on one variant, X-Servegate-Variant picks one):\n"
        f"  curl -s {GATEWAY_URL}/predictions/{MODEL} -H 'Content-Type: text/plain' "
        "-H 'X-User-Id: alice' -d 'hello world'\n"
        f"  curl -s {GATEWAY_URL}/predictions/{MODEL} -H 'Content-Type: application/json' "
        '-H \'X-Servegate-Variant: canary\' -d \'{"inputs": ["hello", "world"]}\'\n'
        "Roll out minilm 2.0 (ONNX) into it while 20 requests a second flow: "
        "`make demo-rollout` (docs/rollout.md).\n"
        "Stop everything with `make stop`.\n"
    )


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]
