"""Hostile clients against a real gateway and TorchServe (issue 14's figures).

A real TorchServe serves ``mlp`` (TorchScript, batches of up to 8 filled for up to 100 ms, so
requests sent together share a forward pass); ``servegate gateway run`` is in front of it.

``poison``  ``--rounds`` rounds of 1 malformed and 7 valid requests sent at once; the malformed
            body rotates through a 5000-digit integer, 100,000 levels of nesting, a UTF-8 BOM,
            a row of the wrong shape and text where numbers go. Counts the valid requests
            answered 200 and the malformed ones answered 400.
``slow``    ``--slow`` connections each send a request line and then one header line every 5 s
            (never finishing the head), while a legitimate client sends ``--rate`` requests a
            second. Counts the slow connections still open after ``--hold`` seconds and compares
            the legitimate p50/p99 with a baseline period without them, in the same run.

    .venv/bin/python -m bench.hostile [--rounds 50] [--slow 300] [--hold 60] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.common import emit, one_variant_config, pct, quick_export, spawn_gateway, torchserve
from bench.environment import cpu_environment
from servegate.ports import free_ports

log = logging.getLogger("bench")
ROW = [0.1 * i for i in range(16)]
VALID = json.dumps({"inputs": [ROW]}).encode()
MALFORMED = {
    "5000-digit integer": b'{"inputs": [[' + b"9" * 5000 + b"]]}",
    "100,000 levels of nesting": b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "UTF-8 BOM": b"\xef\xbb\xbf" + VALID,
    "row of the wrong shape": json.dumps({"inputs": [[1.0, 2.0]]}).encode(),
    "text for numbers": json.dumps({"inputs": "not a tensor"}).encode(),
}
JSON = {"Content-Type": "application/json"}


async def poison(url: str, rounds: int) -> dict[str, object]:
    valid: Counter[int] = Counter()
    malformed: dict[str, Counter[int]] = {name: Counter() for name in MALFORMED}
    names = list(MALFORMED)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=16)) as client:
        for r in range(rounds):
            name = names[r % len(names)]
            bodies = [MALFORMED[name], *([VALID] * 7)]
            answers = await asyncio.gather(
                *(client.post(url, content=b, headers=JSON) for b in bodies)
            )
            malformed[name][answers[0].status_code] += 1
            valid.update(a.status_code for a in answers[1:])
    return {
        "rounds": rounds,
        "valid_200": valid[200],
        "valid_sent": 7 * rounds,
        "valid_statuses": dict(valid),
        "malformed_400": sum(c[400] for c in malformed.values()),
        "malformed_sent": rounds,
        "malformed_statuses": {n: dict(c) for n, c in malformed.items()},
    }


async def legit(url: str, rate: float, seconds: float) -> tuple[list[float], Counter[int]]:
    """Open loop at ``rate``: the latency (ms) of each 200 and every status."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    async with httpx.AsyncClient(timeout=60) as client:

        async def one() -> None:
            began = time.perf_counter()
            try:
                resp = await client.post(url, content=VALID, headers=JSON)
            except httpx.HTTPError:
                statuses[0] += 1
                return
            statuses[resp.status_code] += 1
            if resp.status_code == 200:
                latencies.append((time.perf_counter() - began) * 1000)

        began, tasks = time.monotonic(), []
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies, statuses


async def trickle(port: int, hold_s: float, opened: list[int], closed: list[float]) -> None:
    """One slow client: a request line, then a header line every 5 s until the gateway closes
    the connection (recorded with when) or ``hold_s`` passes."""
    began = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        closed.append(0.0)
        return
    opened.append(1)
    try:
        writer.write(b"POST /predictions/mlp HTTP/1.1\r\nHost: x\r\n")
        n = 0
        while time.monotonic() - began < hold_s:
            try:
                if await asyncio.wait_for(reader.read(65536), timeout=5.0) == b"":
                    closed.append(time.monotonic() - began)
                    return
            except TimeoutError:
                pass
            n += 1
            writer.write(f"X-Slow-{n}: 1\r\n".encode())
            await writer.drain()
    except (ConnectionError, OSError):
        closed.append(time.monotonic() - began)
        return
    finally:
        writer.close()


async def slow(url: str, port: int, n: int, hold_s: float, rate: float) -> dict[str, object]:
    base, base_statuses = await legit(url, rate, 20)
    opened: list[int] = []
    closed: list[float] = []
    slow_clients = [asyncio.create_task(trickle(port, hold_s, opened, closed)) for _ in range(n)]
    await asyncio.sleep(1.0)
    during, during_statuses = await legit(url, rate, 20)
    await asyncio.gather(*slow_clients)
    shed = [t for t in closed if t > 0]
    return {
        "slow_connections": n,
        "opened": len(opened),
        "shed": len(shed),
        "still_open_after_hold": len(opened) - len(shed),
        "hold_s": hold_s,
        "shed_after_s": {"min": round(min(shed), 1), "max": round(max(shed), 1)} if shed else {},
        "legit_rate": rate,
        "baseline_ms": {"p50": round(pct(base, 50), 1), "p99": round(pct(base, 99), 1)},
        "during_ms": {"p50": round(pct(during, 50), 1), "p99": round(pct(during, 99), 1)},
        "p99_ratio": round(pct(during, 99) / pct(base, 99), 2),
        "baseline_statuses": dict(base_statuses),
        "during_statuses": dict(during_statuses),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--slow", type=int, default=300, help="slow connections")
    parser.add_argument("--hold", type=float, default=60.0, help="seconds each slow client tries")
    parser.add_argument("--rate", type=float, default=20.0, help="legitimate requests a second")
    parser.add_argument("--out", type=Path, default=None, help="append the result (JSON line)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sys.setrecursionlimit(10_000)
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        work = Path(tmp)
        store = work / "store"
        quick_export("mlp", store, ("torchscript",), serving={"max_batch_delay_ms": 100})
        with torchserve(store, work / "ts") as ts:
            config = one_variant_config(ts, work / "gateway.yaml")
            port, admin, grpc_port = free_ports(3)
            gateway = spawn_gateway(config, port, admin, grpc_port, work / "gateway.log")
            try:
                url = f"http://127.0.0.1:{port}/predictions/mlp"
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if httpx.post(url, content=VALID, headers=JSON).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"gateway not answering; see {work / 'gateway.log'}")
                    time.sleep(0.5)
                result = {
                    "poison": asyncio.run(poison(url, args.rounds)),
                    "slow": asyncio.run(slow(url, port, args.slow, args.hold, args.rate)),
                }
            finally:
                gateway.terminate()
                gateway.wait(60)
    result["environment"] = cpu_environment()
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
