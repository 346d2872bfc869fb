"""TorchServe's gRPC directly vs gRPC through the gateway, same load, one run, on ``mlp``.

A grpc.aio client keeps ``--concurrency`` ``Predictions`` calls in flight for ``--duration``
seconds against TorchServe's own gRPC port (``mlp_torchscript`` version 1.0, inference key in
metadata) and against the gateway's gRPC port (route ``mlp``; the gateway runs in its own
process, ``servegate gateway run``), in alternating rounds, and reports p50/p99/throughput with
the gateway's added p50 and throughput ratio. Targets: added p50 <= 1 ms, >= 90% of direct.
The gateway forwards to TorchServe's gRPC port (``--upstream grpc``, the backend's
``grpc_address``) or to its HTTP API (``--upstream http``). ``--py-spy FILE`` records the
gateway's stacks (collapsed) during its last round.

    .venv/bin/python -m bench.grpc [--concurrency 8] [--duration 15] [--rounds 2] [--workers 1]
        [--channels 1] [--clients 1] [--upstream grpc|http]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import psutil
import yaml

from bench.common import gateway_processes, pct, quick_export, spawn_gateway, torchserve
from gateway.grpc.stubs import inference_pb2, inference_pb2_grpc
from servegate.ports import free_ports

log = logging.getLogger("bench")
BODY = json.dumps({"inputs": [[0.1 * i for i in range(16)]]}).encode()


async def _calls(  # noqa: PLR0917 (one picklable job tuple per client process)
    address: str,
    request: Any,
    metadata: Sequence[tuple[str, str]],
    concurrency: int,
    seconds: float,
    channels: int,
) -> tuple[list[float], float, float]:
    """One client process: ``concurrency`` calls in flight over ``channels`` channels for
    ``seconds``; the latencies (ms), the timed window (s) and this process's CPU (s)."""
    latencies: list[float] = []
    # A local subchannel pool: otherwise gRPC shares one connection between equal channels.
    options = [("grpc.use_local_subchannel_pool", 1)]
    opened = [grpc.aio.insecure_channel(address, options=options) for _ in range(channels)]
    try:
        stubs = [inference_pb2_grpc.InferenceAPIsServiceStub(ch) for ch in opened]
        for stub in stubs:  # connect before the clock starts
            await stub.Predictions(request, metadata=metadata, timeout=30)
        stop = time.perf_counter() + seconds

        async def worker(stub: Any) -> None:
            while (started := time.perf_counter()) < stop:
                await stub.Predictions(request, metadata=metadata, timeout=30)
                latencies.append((time.perf_counter() - started) * 1000)

        cpu = time.process_time()
        began = time.perf_counter()
        await asyncio.gather(*(worker(stubs[i % channels]) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu
    finally:
        for ch in opened:
            await ch.close()
    return latencies, elapsed, cpu


def _client(*args: Any) -> tuple[list[float], float, float]:
    return asyncio.run(_calls(*args))


def load(
    address: str,
    request: Any,
    metadata: Sequence[tuple[str, str]],
    concurrency: int,
    seconds: float,
    *,
    channels: int = 1,
    clients: int = 1,
    measured: Sequence[psutil.Process] = (),
) -> dict[str, float]:
    """``concurrency`` calls in flight over ``channels`` channels (each its own HTTP/2
    connection, as separate clients would have) from ``clients`` processes for ``seconds``:
    p50/p99 (ms), rate, the client processes' CPU use (cores), and the CPU the ``measured``
    processes (the gateway's) spent per call (µs)."""

    def share(total: int, i: int) -> int:
        return total // clients + (i < total % clients)

    jobs = [
        (address, request, metadata, share(concurrency, i), seconds, max(share(channels, i), 1))
        for i in range(clients)
    ]
    cpu_before = cpu_seconds(measured)
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        parts = pool.starmap(_client, jobs)
    latencies = [x for lat, _, _ in parts for x in lat]
    result = {
        "p50_ms": pct(latencies, 50),
        "p99_ms": pct(latencies, 99),
        # Each process's own rate over its own timed window: start-up is not counted.
        "rps": sum(len(lat) / elapsed for lat, elapsed, _ in parts),
        "client_cores": sum(cpu / elapsed for _, elapsed, cpu in parts),
    }
    if measured:
        # Spawning the clients takes no gateway CPU; their first calls are counted, and few.
        calls = len(latencies) + sum(j[5] for j in jobs)
        result["gateway_cpu_us"] = (cpu_seconds(measured) - cpu_before) / calls * 1e6
    return result


def cpu_seconds(procs: Sequence[psutil.Process]) -> float:
    """User + system CPU of ``procs`` so far (every thread)."""
    return float(sum(t.user + t.system for t in (p.cpu_times() for p in procs)))


def start_gateway(
    config: Path, grpc_port: int, log_file: Path, workers: int = 1
) -> subprocess.Popen[bytes]:
    port, admin_port = free_ports(2)
    proc = spawn_gateway(config, port, admin_port, grpc_port, log_file, workers=workers)
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=60)
        except grpc.FutureTimeoutError:
            proc.terminate()
            raise RuntimeError(f"gateway did not start; see {log_file}") from None
    return proc


def py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        log.error("py-spy is missing: pip install py-spy")
        return None
    argv = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        str(out),
        *(["--native"] if os.environ.get("SPY_NATIVE") else ["--nonblocking"]),
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2, help="alternating direct/gateway rounds")
    parser.add_argument("--workers", type=int, default=1, help="gateway data-plane processes")
    parser.add_argument(
        "--channels", type=int, default=1, help="client channels (HTTP/2 connections)"
    )
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument(
        "--upstream",
        choices=("grpc", "http"),
        default="grpc",
        help="the gateway forwards to TorchServe's gRPC port (grpc_address) or its HTTP API",
    )
    parser.add_argument("--py-spy", type=Path, default=None, help="collapsed stacks of the gateway")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="TorchServe batchSize of the mlp archive"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    with tempfile.TemporaryDirectory(prefix="bench-grpc-") as tmp:
        work = Path(tmp)
        store = work / "store"
        overrides = {} if args.batch_size is None else {"batch_size": args.batch_size}
        quick_export("mlp", store, ("torchscript",), serving=overrides)
        with torchserve(store, work / "ts") as ts:
            s = ts.settings
            config = work / "gateway.yaml"
            backend = {"inference_url": s.url("inference"), "key_file": str(s.key_file)}
            if args.upstream == "grpc":
                backend["grpc_address"] = f"{s.host}:{s.ports.grpc_inference}"
            stable = {"name": "stable", "backend": "ts", "model": "mlp_torchscript", "weight": 100}
            routes = {"mlp": {"variants": [stable]}}
            config.write_text(yaml.safe_dump({"backends": {"ts": backend}, "routes": routes}))
            (grpc_port,) = free_ports(1)
            gw = start_gateway(config, grpc_port, work / "gateway.log", args.workers)
            procs = gateway_processes(gw, args.workers)
            try:
                direct = f"{s.host}:{s.ports.grpc_inference}"
                key = ts.keys().inference.key
                gateway = f"127.0.0.1:{grpc_port}"
                runs = rounds(args, direct, key, gateway, procs)
            finally:
                gw.terminate()
                gw.wait(30)
    report(runs, args)
    return 0


def rounds(
    args: argparse.Namespace,
    direct: str,
    key: str,
    gateway: str,
    procs: Sequence[psutil.Process],
) -> dict[str, list[dict[str, float]]]:
    pb = inference_pb2.PredictionsRequest
    targets = {
        "direct": (
            direct,
            pb(model_name="mlp_torchscript", model_version="1.0", input={"data": BODY}),
            (("authorization", f"Bearer {key}"),),
        ),
        "gateway": (gateway, pb(model_name="mlp", input={"data": BODY}), ()),
    }
    for address, request, metadata in targets.values():  # warm-up both paths
        load(
            address,
            request,
            metadata,
            args.concurrency,
            3,
            channels=args.channels,
            clients=args.clients,
        )
    runs: dict[str, list[dict[str, float]]] = {"direct": [], "gateway": []}
    for i in range(args.rounds):
        for name, (address, request, metadata) in targets.items():
            spy = None
            if name == "gateway" and args.py_spy and i == args.rounds - 1:
                spy = py_spy(procs[0].pid, args.duration, args.py_spy)
            runs[name].append(
                load(
                    address,
                    request,
                    metadata,
                    args.concurrency,
                    args.duration,
                    channels=args.channels,
                    clients=args.clients,
                    measured=procs if name == "gateway" else (),
                )
            )
            if spy is not None:
                spy.wait(60)
    return runs


def report(runs: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    best = {
        k: {m: (min if m != "rps" else max)(r[m] for r in v) for m in v[0]} for k, v in runs.items()
    }
    d, g = best["direct"], best["gateway"]
    lines = [
        f"mlp TorchScript over gRPC, {args.concurrency} calls in flight on {args.channels} "
        f"channel(s) from {args.clients} client process(es), {args.workers} gateway "
        f"process(es) forwarding over {args.upstream}, {args.duration:g} s, "
        f"best of {args.rounds} alternating rounds",
        f"{'':10}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}",
    ]
    for name, r in best.items():
        lines.append(f"{name:10}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}{r['rps']:>10.0f}")
    added50, added99 = g["p50_ms"] - d["p50_ms"], g["p99_ms"] - d["p99_ms"]
    ratio = g["rps"] / d["rps"]
    lines += [
        f"added p50 {added50:+.2f} ms (target <= 1), added p99 {added99:+.2f} ms, "
        f"throughput {ratio:.1%} of direct (target >= 90%), "
        f"gateway CPU {g['gateway_cpu_us']:.0f} us per call; client CPU "
        f"{d['client_cores']:.2f} cores direct, {g['client_cores']:.2f} via the gateway",
        "every round: " + json.dumps(runs),
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
