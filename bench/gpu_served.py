"""End to end on one GPU: ``resnet50`` or ``minilm`` served by TorchServe with dynamic
batching, against the same TorchScript artifact run raw on the GPU at the same batch size (and,
for MiniLM, the same token count), in the same run.

Each ``resnet50`` request carries one JPEG, which the servegate handler decodes, resizes and
crops on the worker's CPU; each ``minilm`` request carries one text of ``TEXT_TOKENS`` tokens,
which the handler tokenises on the worker's CPU. The handler batches up to ``--batch-size``
requests and runs the model on the GPU.

    python -m bench.gpu_served --out $OUT/served.json [--model resnet50] [--batch-size 32]
        [--workers 4] [--gateway-workers 4]

With ``--gateway-workers N`` the same load then goes through the gateway (N processes, route
``resnet50`` -> the same archive) in the same run: ``served_gateway``. ``--coalesce M`` turns
on the route's coalescing there (``coalesce: {max_items: M, max_wait_ms: --coalesce-wait-ms}``,
docs/gateway.md): each request still carries one item, so ``rps`` is items per second either
way, and a run with and a run without it compare the two.
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

from bench.common import gateway_processes, quick_export, spawn_gateway, torchserve
from bench.gpu_timing import throughput
from bench.handler_stages import stage_times
from bench.loadgen import Load, run_load
from handlers.runtimes.torchscript import TorchScriptRuntime
from servegate.ports import free_ports
from servegate.torchserve.settings import TorchServeSettings

log = logging.getLogger("bench")
TEXT_TOKENS = 128  # the sequence length of the raw GPU tables


def jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize((320, 256)).save(buf, format="JPEG")
    return buf.getvalue()


def text() -> str:
    """A text of exactly ``TEXT_TOKENS`` tokens with [CLS] and [SEP] (MiniLM's tokenizer)."""
    from tokenizers import Tokenizer

    from export.models import minilm

    tokenizer = Tokenizer.from_file(str(minilm.model_dir() / "tokenizer.json"))
    words = " ".join(f"word{i % 50}" for i in range(4 * TEXT_TOKENS)).split()
    lo, hi = 1, len(words)
    while lo < hi:  # the most words that fit
        mid = (lo + hi + 1) // 2
        if len(tokenizer.encode(" ".join(words[:mid])).ids) <= TEXT_TOKENS:
            lo = mid
        else:
            hi = mid - 1
    sentence = " ".join(words[:lo])
    log.info("text of %d tokens", len(tokenizer.encode(sentence).ids))
    return sentence


def request_body(model: str) -> bytes:
    if model == "minilm":
        return json.dumps({"inputs": [text()]}).encode()
    return json.dumps({"inputs": [base64.b64encode(jpeg()).decode()]}).encode()


def raw_inputs(model: str, batch: int) -> tuple[torch.Tensor, ...]:
    if model == "minilm":
        ids = torch.randint(1000, 30000, (batch, TEXT_TOKENS), device="cuda")
        return ids, torch.ones_like(ids)
    return (torch.randn(batch, 3, 224, 224, device="cuda"),)


def raw_throughput(model: str, artifact: Path, batch: int) -> dict[str, float]:
    """The exported TorchScript module on the GPU, input already there (fp32, TF32 off)."""
    runtime = TorchScriptRuntime.load(artifact, torch.device("cuda"))
    inputs = raw_inputs(model, batch)
    module = runtime._module  # the served artifact itself, without the copy back to CPU

    def run() -> object:
        with torch.inference_mode():
            return module(*inputs)

    return throughput(run, batch)


def through_gateway(
    ts: TorchServeSettings, body: bytes, args: argparse.Namespace, work: Path
) -> dict[str, float]:
    work.mkdir(parents=True, exist_ok=True)
    backend = {"inference_url": ts.url("inference"), "key_file": str(ts.key_file)}
    variant = {
        "name": "stable",
        "backend": "ts",
        "model": f"{args.model}_torchscript",
        "weight": 100,
    }
    config = work / "gateway.yaml"
    route: dict[str, Any] = {"variants": [variant], "timeout_s": 120}
    if args.coalesce:
        route["coalesce"] = {"max_items": args.coalesce, "max_wait_ms": args.coalesce_wait_ms}
    routes = {args.model: route}
    config.write_text(yaml.safe_dump({"backends": {"ts": backend}, "routes": routes}))
    port, admin, grpc_port = free_ports(3)
    proc = spawn_gateway(
        config, port, admin, grpc_port, work / "gateway.log", workers=args.gateway_workers
    )
    try:
        gateway_processes(proc, args.gateway_workers)
        url = f"http://127.0.0.1:{port}/predictions/{args.model}"
        headers = {"Content-Type": "application/json"}
        run_load(Load(url, body, headers, args.concurrency, 5), args.clients)  # warm-up
        return run_load(Load(url, body, headers, args.concurrency, args.seconds), args.clients)
    finally:
        proc.terminate()
        proc.wait(60)


def stages(
    store: Path, body: bytes, served: dict[str, float], args: argparse.Namespace
) -> dict[str, Any]:
    """The handler's stage times at batch 1, the served mean batch and the maximum."""
    mar = next(store.rglob(f"{args.model}_torchscript.mar"))
    batches = tuple(sorted({1, max(1, round(served.get("mean_batch", 1))), args.batch_size}))
    times = stage_times(mar, body, batches, args.device)
    log.info("handler stages: %s", times)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", choices=("resnet50", "minilm"), default="resnet50")
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
    parser.add_argument(
        "--coalesce", type=int, default=0, help="the gateway joins up to M one-item requests"
    )
    parser.add_argument("--coalesce-wait-ms", type=float, default=2.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    result: dict[str, Any] = {"model": args.model, "settings": vars(args) | {"out": str(args.out)}}
    with tempfile.TemporaryDirectory(prefix="bench-served-") as tmp:
        store = Path(tmp) / "store"
        serving = {
            "batch_size": args.batch_size,
            "max_batch_delay_ms": args.delay_ms,
            "min_workers": args.workers,
            "max_workers": args.workers,
        }
        quick_export(args.model, store, ("torchscript",), device=args.device, serving=serving)
        artifact = store / args.model / "torchscript" / "artifact" / "model.torchscript.pt"
        if args.device == "cuda":
            result["raw_fp32"] = raw_throughput(args.model, artifact, args.batch_size)
            log.info("raw: %s", result["raw_fp32"])
            torch.cuda.empty_cache()
        with torchserve(store, Path(tmp) / "ts") as server:
            url = f"{server.settings.url('inference')}/predictions/{args.model}_torchscript/1.0"
            headers = {
                "Authorization": f"Bearer {server.keys().inference.key}",
                "Content-Type": "application/json",
            }
            body = request_body(args.model)
            run_load(Load(url, body, headers, args.concurrency, 5), args.clients)  # warm-up
            load = Load(url, body, headers, args.concurrency, args.seconds)
            result["served"] = run_load(load, args.clients)
            log.info("served: %s", result["served"])
            if args.gateway_workers:
                result["served_gateway"] = through_gateway(
                    server.settings, body, args, Path(tmp) / "gateway"
                )
                log.info("served through the gateway: %s", result["served_gateway"])
            result["handler_stages_ms"] = stages(store, body, result["served"], args)
            model_log = (server.settings.logdir / "model_log.log").read_text()
            log_copy = args.out.parent / f"served-{args.model}-model-log.txt"
            log_copy.write_text(model_log[-200_000:])
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
