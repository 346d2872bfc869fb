"""A closed-loop HTTP load generator in Python: ``concurrency`` requests in flight, spread over
``processes`` client processes (one event loop each), for ``seconds``. For machines without
wrk (the H200); on the CPU machine the suites use wrk, which costs the server less CPU.

aiohttp, not httpx: with an 8 KB JSON answer (a MiniLM embedding) httpx's AsyncClient spent
1.9 ms of CPU per request against aiohttp's 0.1 ms (same machine, same server, 16 in flight),
and on the H200 the httpx generator was what limited the served figures (3.98 of 4 client
cores busy). Each process reports the CPU it used (``client_cores``): near 1 per process, the
generator is the limit again."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass

import aiohttp

from bench.common import pct


@dataclass(frozen=True)
class Load:
    url: str
    body: bytes
    headers: dict[str, str]
    concurrency: int
    seconds: float


async def _client(load: Load, share: int) -> tuple[list[float], list[int], float, float]:
    latencies: list[float] = []
    batches: list[int] = []
    stop = time.perf_counter() + load.seconds
    connector = aiohttp.TCPConnector(limit=share)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        headers=load.headers, connector=connector, timeout=timeout
    ) as client:

        async def worker() -> None:
            while (started := time.perf_counter()) < stop:
                async with client.post(load.url, data=load.body) as resp:
                    answer = await resp.read()
                    if resp.status >= 400:  # a plain message: aiohttp's error does not pickle
                        raise RuntimeError(f"{resp.status} from {load.url}: {answer[:200]!r}")
                    batch = resp.headers.get("x-servegate-batch-size", "0")
                latencies.append((time.perf_counter() - started) * 1000)
                batches.append(int(batch))

        cpu = time.process_time()
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(share)))
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu
    return latencies, batches, elapsed, cpu


def _process(load: Load, share: int) -> tuple[list[float], list[int], float, float]:
    return asyncio.run(_client(load, share))


def run_load(load: Load, processes: int) -> dict[str, float]:
    shares = [
        load.concurrency // processes + (i < load.concurrency % processes) for i in range(processes)
    ]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.starmap(_process, [(load, s) for s in shares if s])
    latencies = [x for lat, _, _, _ in parts for x in lat]
    batches = [b for _, bs, _, _ in parts for b in bs]
    # Each process's own rate over its own timed window: process start-up is not counted.
    rps = sum(len(lat) / elapsed for lat, _, elapsed, _ in parts)
    return {
        "rps": round(rps, 1),
        "p50_ms": round(pct(latencies, 50), 2),
        "p99_ms": round(pct(latencies, 99), 2),
        "mean_batch": round(sum(batches) / max(len(batches), 1), 2),
        "requests": len(latencies),
        # Near 1.0 per process, the load generator itself is the limit.
        "client_cores": round(sum(cpu / elapsed for _, _, elapsed, cpu in parts), 2),
        "client_processes": processes,
    }
