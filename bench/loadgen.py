"""A closed-loop HTTP load generator in Python: ``concurrency`` requests in flight, spread over
``processes`` client processes (one event loop each), for ``seconds``. For machines without
wrk (the H200); on the CPU machine the suites use wrk, which costs the server less CPU.

aiohttp, not httpx: with an 8 KB JSON answer (a MiniLM embedding) httpx's AsyncClient spent
1.9 ms of CPU per request against aiohttp's 0.1 ms (same machine, same server, 16 in flight),
and on the H200 the httpx generator was what limited the served figures (3.98 of 4 client
cores busy). Each process reports the CPU it used (``client_cores``): near 1 per process, the
generator is the limit again.

A load may also read each answer as a real client would (``decode``: parse the JSON, or split
an OIP v2 binary answer and view its tensors), so that a path whose answers are costly to read
shows that cost in ``client_cores``; and it may count failed requests instead of stopping at
the first (``max_errors``), so that one refusal does not lose a run's figures."""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import time
from dataclasses import dataclass
from typing import Literal

import aiohttp
import numpy as np

from bench.common import pct

log = logging.getLogger("bench")

# What one request may raise: transport, status >= 400, an answer that does not read.
FAILURES = (TimeoutError, aiohttp.ClientError, RuntimeError, ValueError, KeyError)
Decode = Literal["none", "json", "oip_binary"]
# One process's latencies, batch sizes, timed window (s), CPU (s), failures, first failure, and
# when its timed window began (epoch s).
Part = tuple[list[float], list[int], float, float, int, str, float]


@dataclass(frozen=True)
class Load:
    url: str
    body: bytes
    headers: dict[str, str]
    concurrency: int
    seconds: float
    decode: Decode = "none"
    max_errors: int = 0  # failed requests counted before the load stops with the last one


def read_answer(decode: Decode, answer: bytes, header_length: str | None) -> None:
    """What a client does with an answer before it can use it."""
    if decode == "json":
        json.loads(answer)
    elif decode == "oip_binary":
        if header_length is None:
            raise RuntimeError(f"no Inference-Header-Content-Length: {answer[:200]!r}")
        offset = int(header_length)
        for out in json.loads(answer[:offset])["outputs"]:
            size = int(out["parameters"]["binary_data_size"])
            np.frombuffer(answer, dtype="<f4", count=size // 4, offset=offset)
            offset += size


async def _one(client: aiohttp.ClientSession, load: Load) -> int:
    """One request; the batch size the worker reported (0 when it was not passed on)."""
    async with client.post(load.url, data=load.body) as resp:
        answer = await resp.read()
        if resp.status >= 400:  # a plain message: aiohttp's error does not pickle
            raise RuntimeError(f"{resp.status} from {load.url}: {answer[:200]!r}")
        read_answer(load.decode, answer, resp.headers.get("inference-header-content-length"))
        return int(resp.headers.get("x-servegate-batch-size", "0"))


async def _client(load: Load, share: int) -> Part:
    latencies: list[float] = []
    batches: list[int] = []
    failures: list[str] = []
    stop = time.perf_counter() + load.seconds
    connector = aiohttp.TCPConnector(limit=share)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        headers=load.headers, connector=connector, timeout=timeout
    ) as client:

        async def worker() -> None:
            while (started := time.perf_counter()) < stop:
                try:
                    batch = await _one(client, load)
                except FAILURES as exc:
                    failures.append(f"{type(exc).__name__}: {exc}"[:300])
                    if len(failures) > load.max_errors:
                        raise RuntimeError(failures[-1]) from None
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                batches.append(batch)

        cpu = time.process_time()
        began_at = time.time()
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(share)))
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu
    first = failures[0] if failures else ""
    return latencies, batches, elapsed, cpu, len(failures), first, began_at


def _process(load: Load, share: int) -> Part:
    return asyncio.run(_client(load, share))


def run_load(load: Load, processes: int, failures: list[str] | None = None) -> dict[str, float]:
    """The load's figures; the first failure of each client process that had one goes to
    ``failures`` when given."""
    shares = [
        load.concurrency // processes + (i < load.concurrency % processes) for i in range(processes)
    ]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.starmap(_process, [(load, s) for s in shares if s])
    latencies = [x for part in parts for x in part[0]]
    batches = [b for part in parts for b in part[1]]
    failed = sum(part[4] for part in parts)
    if not latencies:
        raise RuntimeError(f"no request succeeded of {failed}: {parts[0][5]}")
    # Each process's own rate over its own timed window: process start-up is not counted.
    rps = sum(len(part[0]) / part[2] for part in parts)
    result: dict[str, float] = {
        "rps": round(rps, 1),
        "p50_ms": round(pct(latencies, 50), 2),
        "p99_ms": round(pct(latencies, 99), 2),
        "requests": len(latencies),
        # Near 1.0 per process, the load generator itself is the limit.
        "client_cores": round(sum(part[3] / part[2] for part in parts), 2),
        "client_processes": processes,
        # The timed window of the whole load (epoch s): what other processes did meanwhile.
        "window_start": min(part[6] for part in parts),
        "window_end": max(part[6] + part[2] for part in parts),
    }
    if any(batches):  # the worker's batch size, where the answer carries it (direct only)
        result["mean_batch"] = round(sum(batches) / len(batches), 2)
    if failed:
        result["errors"] = failed
        firsts = [part[5] for part in parts if part[5]]
        log.warning("%d request(s) failed; the first: %s", failed, firsts[0])
        if failures is not None:
            failures.extend(firsts)
    return result
