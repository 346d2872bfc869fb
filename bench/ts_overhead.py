"""TorchServe's per-request overhead with servegate's handler: client latency minus the
handler's own time (``X-Servegate-Handler-Ms``), for the ``mlp`` TorchScript archive.

Two archives of the same model: batch size 1 (no batching wait) and the default dynamic
batching settings (batch 8, 5 ms max delay: a lone request waits for the batch to fill).

    .venv/bin/python -m bench.ts_overhead [--requests 2000]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import pct, quick_export, torchserve

log = logging.getLogger("bench")
ROW = [[0.1 * i for i in range(16)]]


def measure(server_url: str, key: str, model: str, n: int) -> dict[str, float]:
    latency, handler = [], []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server_url, headers=headers, timeout=30) as client:
        for i in range(n + 50):
            started = time.perf_counter()
            resp = client.post(f"/predictions/{model}", json={"inputs": ROW})
            elapsed = (time.perf_counter() - started) * 1000
            resp.raise_for_status()
            if i >= 50:  # warm-up
                latency.append(elapsed)
                handler.append(float(resp.headers["x-servegate-handler-ms"]))
    overhead = [a - b for a, b in zip(latency, handler, strict=True)]
    return {
        "latency_p50_ms": round(pct(latency, 50), 3),
        "latency_p99_ms": round(pct(latency, 99), 3),
        "handler_p50_ms": round(pct(handler, 50), 3),
        "overhead_p50_ms": round(pct(overhead, 50), 3),
        "overhead_p99_ms": round(pct(overhead, 99), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    results = {}
    with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp:
        for label, overrides in (("batch1", {"batch_size": 1}), ("batch8_delay5ms", {})):
            store = Path(tmp) / label
            quick_export("mlp", store, ("torchscript",), serving=overrides)
            with torchserve(store, Path(tmp) / f"ts-{label}") as server:
                url = server.settings.url("inference")
                results[label] = measure(
                    url, server.keys().inference.key, "mlp_torchscript", args.requests
                )
            log.info("%s: %s", label, results[label])
    json.dump(
        {"model": "mlp_torchscript", "sequential_requests": args.requests, **results},
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
