"""A gateway restart under steady load: how many requests fail.

A real TorchServe serves ``mlp`` (TorchScript); a gateway runs in front of it through the CLI
(``servegate gateway start``, its state in a temporary ``SERVEGATE_HOME``). An open-loop client
sends ``--rate`` requests a second for ``--duration`` seconds, half on pooled keep-alive
connections and half on a new connection each (``Connection: close``), and ``--grpc-rate``
TorchServe-API ``Predictions`` calls a second on one gRPC channel; ``--restart-at`` seconds in,
the gateway is restarted, by

    restart      ``servegate gateway restart`` (the new gateway takes the sockets, the old drains)
    stop-start   ``servegate gateway stop`` then ``servegate gateway start`` (the only way before)

Every request's outcome is recorded: a non-200 answer or a connection error is a failure, and
the longest stretch with no successful answer is reported. ``--src DIR`` runs the gateway (and
the CLI) from another checkout, e.g. main's code:

    mkdir -p /tmp/main-src && git archive main | tar -x -C /tmp/main-src
    cp -r gateway/grpc/stubs /tmp/main-src/gateway/grpc/    # generated (make protos)
    .venv/bin/python -m bench.restart --how stop-start --src /tmp/main-src
    .venv/bin/python -m bench.restart --how restart
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx

from bench.common import emit, one_variant_config, quick_export, torchserve
from bench.environment import cpu_environment
from servegate.ports import free_ports

log = logging.getLogger("bench")
BODY = {"inputs": [[0.1 * i for i in range(16)]]}
CLIENTS = ("keep-alive", "new connection each")


@dataclass
class Outcomes:
    ok_at: list[float] = field(default_factory=list)  # when each success came back
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def sent(self) -> int:
        return len(self.ok_at) + sum(self.failures.values())


async def steady(url: str, rate: float, seconds: float, fresh: bool, out: Outcomes) -> None:
    """Open loop: request i leaves at i / rate whatever the answers before it did."""
    headers = {"Connection": "close"} if fresh else {}
    async with httpx.AsyncClient(timeout=60) as client:

        async def one() -> None:
            try:
                resp = await client.post(url, json=BODY, headers=headers)
            except httpx.HTTPError as exc:
                out.failures[type(exc).__name__] += 1
                return
            if resp.status_code == 200:
                out.ok_at.append(time.monotonic())
            else:
                out.failures[f"HTTP {resp.status_code}"] += 1

        began, tasks = time.monotonic(), []
        for i in range(int(seconds * rate)):
            await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)


async def steady_grpc(address: str, rate: float, seconds: float, out: Outcomes) -> None:
    """The same open loop, as unary gRPC calls on one long-lived channel."""
    from gateway.grpc.stubs import inference_pb2 as ts_pb
    from gateway.grpc.stubs import inference_pb2_grpc as ts_grpc

    request = ts_pb.PredictionsRequest(model_name="mlp", input={"data": json.dumps(BODY).encode()})
    async with grpc.aio.insecure_channel(address) as channel:
        stub = ts_grpc.InferenceAPIsServiceStub(channel)

        async def one() -> None:
            try:
                await stub.Predictions(request, timeout=60)
            except grpc.aio.AioRpcError as exc:
                out.failures[exc.code().name] += 1
                return
            out.ok_at.append(time.monotonic())

        began, tasks = time.monotonic(), []
        for i in range(int(seconds * rate)):
            await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)


class Cli:
    def __init__(self, home: Path, src: Path | None, config: Path, ports: list[int]) -> None:
        self.home = home
        self.env = {**os.environ, "SERVEGATE_HOME": str(home)}
        if src is not None:
            self.env["PYTHONPATH"] = str(src)
        port, admin, grpc_port = ports
        self.args = ["--config", str(config), "--port", str(port), "--admin-port", str(admin)]
        self.args += ["--grpc-port", str(grpc_port)]

    def __call__(self, *args: str) -> float:
        """Run ``servegate gateway ...``; its wall time."""
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "servegate.cli", "gateway", *args],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"gateway {args[0]} failed: {done.stderr}")
        return time.monotonic() - began


def measure(args: argparse.Namespace, url: str, grpc_address: str, cli: Cli) -> dict[str, object]:
    outcomes = {name: Outcomes() for name in CLIENTS}
    if args.grpc_rate:
        outcomes["grpc channel"] = Outcomes()

    async def main() -> float:
        share = args.rate / len(CLIENTS)
        clients = [
            steady(url, share, args.duration, name != "keep-alive", outcomes[name])
            for name in CLIENTS
        ]
        if args.grpc_rate:
            out = outcomes["grpc channel"]
            clients.append(steady_grpc(grpc_address, args.grpc_rate, args.duration, out))
        load = asyncio.gather(*clients)
        await asyncio.sleep(args.restart_at)
        if args.how == "restart":
            took = await asyncio.to_thread(cli, "restart", *cli.args)
        else:
            took = await asyncio.to_thread(cli, "stop")
            took += await asyncio.to_thread(cli, "start", *cli.args)
        await load
        return took

    took = asyncio.run(main())
    result: dict[str, object] = {"how": args.how, "restart_s": round(took, 2)}
    for name, out in outcomes.items():
        times = sorted(out.ok_at)
        gap = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
        result[name] = {
            "sent": out.sent,
            "failed": sum(out.failures.values()),
            "failures": dict(out.failures),
            "longest_gap_s": round(gap, 2),
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--how", choices=("restart", "stop-start"), default="restart")
    parser.add_argument("--rate", type=float, default=20.0, help="HTTP requests a second, in all")
    parser.add_argument("--grpc-rate", type=float, default=0.0, help="gRPC calls a second")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--restart-at", type=float, default=5.0)
    parser.add_argument("--src", type=Path, default=None, help="run the gateway from here")
    parser.add_argument("--out", type=Path, default=None, help="append the result (JSON line)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
        work = Path(tmp)
        (work / ".servegate").mkdir()
        store = work / "store"
        quick_export("mlp", store, ("torchscript",))
        with torchserve(store, work / "ts") as ts:
            config = one_variant_config(ts, work / "gateway.yaml")
            ports = free_ports(3)
            cli = Cli(work, args.src, config, ports)
            cli("start", *cli.args)
            try:
                url = f"http://127.0.0.1:{ports[0]}/predictions/mlp"
                result = measure(args, url, f"127.0.0.1:{ports[2]}", cli)
            finally:
                cli("stop")
    result["src"] = str(args.src) if args.src else "this checkout"
    result["rate"], result["grpc_rate"] = args.rate, args.grpc_rate
    result["duration_s"] = args.duration
    result["environment"] = cpu_environment()
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
