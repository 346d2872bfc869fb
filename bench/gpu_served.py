"""End to end on one GPU: ``resnet50`` served by TorchServe with dynamic batching, against the
same TorchScript artifact run raw on the GPU at the same batch size, in the same run.

Each request carries one JPEG; the servegate handler decodes, resizes and crops it on the
worker's CPU, batches up to ``--batch-size`` requests and runs the model on the GPU. The
handler's own time per batch (``X-Servegate-Handler-Ms``) splits the latency into TorchServe
(frontend, queueing) and handler time.

    python -m bench.gpu_served --out $OUT/served.json [--batch-size 32] [--workers 4]
        [--gateway-workers 4]

With ``--gateway-workers N`` the same load then goes through the gateway (N processes, route
``resnet50`` -> the same archive) in the same run: ``served_gateway``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from bench.common import gateway_processes, spawn_gateway, torchserve
from bench.gpu_timing import throughput
from bench.loadgen import Load, run_load
from export.pipeline import ExportRequest, run_export
from export.timing import TimingPlan
from handlers.runtimes.torchscript import TorchScriptRuntime
from servegate.ports import free_ports
from servegate.torchserve.settings import TorchServeSettings

log = logging.getLogger("bench")
MODEL = "resnet50"


def jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize((320, 256)).save(buf, format="JPEG")
    return buf.getvalue()


def raw_throughput(artifact: Path, batch: int) -> dict[str, float]:
    """The exported TorchScript module on the GPU, input already there (fp32, TF32 off)."""
    runtime = TorchScriptRuntime.load(artifact, torch.device("cuda"))
    pixels = torch.randn(batch, 3, 224, 224, device="cuda")
    module = runtime._module  # the served artifact itself, without the copy back to CPU

    def run() -> object:
        with torch.inference_mode():
            return module(pixels)

    return throughput(run, batch)


def through_gateway(
    ts: TorchServeSettings, body: bytes, args: argparse.Namespace, work: Path
) -> dict[str, float]:
    work.mkdir(parents=True, exist_ok=True)
    backend = {"inference_url": ts.url("inference"), "key_file": str(ts.key_file)}
    variant = {"name": "stable", "backend": "ts", "model": f"{MODEL}_torchscript", "weight": 100}
    config = work / "gateway.yaml"
    routes = {MODEL: {"variants": [variant], "timeout_s": 120}}
    config.write_text(yaml.safe_dump({"backends": {"ts": backend}, "routes": routes}))
    port, admin, grpc_port = free_ports(3)
    proc = spawn_gateway(
        config, port, admin, grpc_port, work / "gateway.log", workers=args.gateway_workers
    )
    try:
        gateway_processes(proc, args.gateway_workers)
        url = f"http://127.0.0.1:{port}/predictions/{MODEL}"
        headers = {"Content-Type": "application/json"}
        run_load(Load(url, body, headers, args.concurrency, 5), args.clients)  # warm-up
        return run_load(Load(url, body, headers, args.concurrency, args.seconds), args.clients)
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--delay-ms", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the serving path")
    parser.add_argument(
        "--gateway-workers", type=int, default=0, help="also through the gateway (N processes)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    result: dict[str, Any] = {"model": MODEL, "settings": vars(args) | {"out": str(args.out)}}
    with tempfile.TemporaryDirectory(prefix="bench-served-") as tmp:
        store = Path(tmp) / "store"
        serving = {
            "batch_size": args.batch_size,
            "max_batch_delay_ms": args.delay_ms,
            "min_workers": args.workers,
            "max_workers": args.workers,
        }
        plan = TimingPlan(warmup=1, min_runs=1, max_runs=1, budget_s=0.0)
        request = ExportRequest(
            model=MODEL,
            out=store,
            formats=("torchscript",),
            device=args.device,
            timing=plan,
            serving_overrides=serving,
        )
        run_export(request)
        artifact = store / MODEL / "torchscript" / "artifact" / "model.torchscript.pt"
        if args.device == "cuda":
            result["raw_fp32"] = raw_throughput(artifact, args.batch_size)
            log.info("raw: %s", result["raw_fp32"])
            torch.cuda.empty_cache()
        with torchserve(store, Path(tmp) / "ts") as server:
            url = f"{server.settings.url('inference')}/predictions/{MODEL}_torchscript/1.0"
            headers = {
                "Authorization": f"Bearer {server.keys().inference.key}",
                "Content-Type": "application/json",
            }
            body = json.dumps({"inputs": [base64.b64encode(jpeg()).decode()]}).encode()
            run_load(Load(url, body, headers, args.concurrency, 5), args.clients)  # warm-up
            load = Load(url, body, headers, args.concurrency, args.seconds)
            result["served"] = run_load(load, args.clients)
            log.info("served: %s", result["served"])
            if args.gateway_workers:
                result["served_gateway"] = through_gateway(
                    server.settings, body, args, Path(tmp) / "gateway"
                )
                log.info("served through the gateway: %s", result["served_gateway"])
            model_log = (server.settings.logdir / "model_log.log").read_text()
            (args.out.parent / "served-model-log.txt").write_text(model_log[-200_000:])
    if "raw_fp32" in result:
        for key in ("served", "served_gateway"):
            if key in result:
                ratio = result[key]["rps"] / result["raw_fp32"]["items_per_s"]
                result[f"{key}_over_raw"] = round(ratio, 4)
    args.out.write_text(json.dumps(result, indent=2))
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
