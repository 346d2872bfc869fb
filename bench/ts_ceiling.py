"""TorchServe's own ceiling: requests per second with a handler that answers at once
(``bench/noop_handler.py``), directly and through the gateway, under the same load.

Whatever a model costs comes on top of this: a model served one item per request cannot pass
it, however fast its GPU work is (issue 20's first measurement). The request body is the one
the served benchmarks send (one JPEG for ``resnet50``, one 128-token text for ``minilm``) or a
small JSON (``none``), so the frontend reads what it would read in production.

    python -m bench.ts_ceiling [--body resnet50|minilm|none] [--workers 4] [--batch-size 1]
        [--concurrency 64] [--clients 4] [--seconds 10] [--gateway-workers 4] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import yaml

from bench.common import emit, gateway_processes, torchserve
from bench.gateway import start_gateway
from bench.loadgen import Load, run_load
from servegate import pins
from servegate.ports import free_ports
from servegate.torchserve.settings import TorchServeSettings

log = logging.getLogger("bench")
MODEL = "noop"


def archive(store: Path, args: argparse.Namespace) -> None:
    """``noop.mar`` in ``store``: the handler file and a model-config.yaml, pinned."""
    from model_archiver.model_archiver import ModelArchiver
    from model_archiver.model_archiver_config import ModelArchiverConfig

    store.mkdir(parents=True)
    config = store.parent / "model-config.yaml"
    serving = {
        "minWorkers": args.workers,
        "maxWorkers": args.workers,
        "batchSize": args.batch_size,
        "maxBatchDelay": args.delay_ms,
        "responseTimeout": 60,
    }
    config.write_text(yaml.safe_dump(serving))
    ModelArchiver.generate_model_archive(
        ModelArchiverConfig(
            model_name=MODEL,
            handler=str(Path(__file__).with_name("noop_handler.py")),
            version="1.0",
            export_path=str(store),
            config_file=str(config),
            archive_format="default",
            force=True,
        )
    )
    pins.record(pins.pin_file_for(store), store / f"{MODEL}.mar", model=MODEL, fmt="noop")


def body(kind: str) -> bytes:
    if kind == "none":
        return json.dumps({"inputs": [[0.0]]}).encode()
    from bench.gpu_served import request_body

    return request_body(kind)


def through_gateway(
    ts: TorchServeSettings, load: Load, args: argparse.Namespace, work: Path
) -> dict[str, float]:
    backend = {"inference_url": ts.url("inference"), "key_file": str(ts.key_file)}
    variant = {"name": "stable", "backend": "ts", "model": MODEL, "weight": 100}
    config = work / "gateway.yaml"
    routes = {MODEL: {"variants": [variant], "timeout_s": 60}}
    config.write_text(yaml.safe_dump({"backends": {"ts": backend}, "routes": routes}))
    port, admin = free_ports(2)
    log_file = work / "gateway.log"
    try:
        proc = start_gateway(config, port, admin, log_file, args.gateway_workers)
    except RuntimeError:
        log.error("the gateway did not start; its log ends:\n%s", log_file.read_text()[-3000:])
        raise
    try:
        gateway_processes(proc, args.gateway_workers)
        url = f"http://127.0.0.1:{port}/predictions/{MODEL}"
        routed = Load(url, load.body, {"Content-Type": "application/json"}, load.concurrency, 3)
        run_load(routed, args.clients)  # warm-up
        timed = Load(routed.url, routed.body, routed.headers, routed.concurrency, load.seconds)
        return run_load(timed, args.clients)
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--body", choices=("resnet50", "minilm", "none"), default="none")
    parser.add_argument("--workers", type=int, default=4, help="TorchServe workers")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--delay-ms", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--clients", type=int, default=4, help="load generator processes")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--gateway-workers", type=int, default=0, help="0: direct only")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    payload = body(args.body)
    result: dict[str, object] = {
        "benchmark": "ts_ceiling",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "body_bytes": len(payload),
    }
    with tempfile.TemporaryDirectory(prefix="bench-ceiling-") as tmp:
        work = Path(tmp)
        archive(work / "store", args)
        with torchserve(work / "store", work / "ts", (MODEL,)) as ts:
            s = ts.settings
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {ts.keys().inference.key}",
            }
            url = f"{s.url('inference')}/predictions/{MODEL}"
            run_load(Load(url, payload, headers, args.concurrency, 3), args.clients)  # warm-up
            direct = run_load(
                Load(url, payload, headers, args.concurrency, args.seconds), args.clients
            )
            log.info("direct: %s", direct)
            result["direct"] = direct
            if args.gateway_workers:
                routed = through_gateway(
                    s, Load(url, payload, headers, args.concurrency, args.seconds), args, work
                )
                log.info("gateway: %s", routed)
                result["gateway"] = routed
                result["gateway_ratio"] = round(routed["rps"] / direct["rps"], 3)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
