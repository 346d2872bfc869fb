"""Dynamic batching sweep: ``minilm`` (ONNX) through TorchServe at several
``batch_size``/``max_batch_delay`` settings under one fixed concurrency (wrk), one archive per
setting from the same artifact, measured in turn in one TorchServe. The setting chosen is the
highest throughput whose p99 is at most 1.25x the lowest p99 seen; ``ServingConfig``'s defaults
come from it (docs/benchmarks.md).

    .venv/bin/python -m bench.batching [--connections 16] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import quick_export, torchserve
from bench.wrkload import wrk
from export.package import build_archive
from export.registry import resolve
from export.spec import ServingConfig

log = logging.getLogger("bench")
SETTINGS = ((1, 0), (4, 5), (8, 5), (8, 20), (16, 10), (32, 20))
TEXT = "The quick brown fox jumps over the lazy dog while the band plays on the pier."


def archives(store: Path, work: Path) -> list[str]:
    spec = resolve("minilm")
    quick_export("minilm", work, ("onnx",))
    artifact_dir = work / "minilm" / "onnx" / "artifact"
    artifacts = [artifact_dir / "model.onnx", *sorted(artifact_dir.glob("model.onnx.data"))]
    names = []
    for batch, delay in SETTINGS:
        serving = ServingConfig(batch_size=batch, max_batch_delay_ms=delay)
        variant = spec.model_copy(update={"name": f"minilm_b{batch}_d{delay}", "serving": serving})
        build_archive(variant, "onnx", artifacts, work / "stage" / variant.name, store)
        names.append(f"{variant.name}_onnx")
    return names


def choose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    best_p99 = min(r["p99_ms"] for r in rows)
    eligible = [r for r in rows if r["p99_ms"] <= 1.25 * best_p99]
    return max(eligible, key=lambda r: r["rps"])


def run(connections: int, duration: int) -> dict[str, Any]:
    body = json.dumps({"inputs": [TEXT]})
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as tmp:
        store, work = Path(tmp) / "store", Path(tmp) / "work"
        store.mkdir()
        names = archives(store, work)
        with torchserve(store, Path(tmp) / "ts", tuple(names)) as server:
            key = server.settings.url("inference"), server.keys().inference.key
            for name, (batch, delay) in zip(names, SETTINGS, strict=True):
                url = f"{key[0]}/predictions/{name}/1.0"
                wrk(url, body, connections, 2, key[1])  # warm-up
                result = wrk(url, body, connections, duration, key[1])
                rows.append({"batch_size": batch, "max_batch_delay_ms": delay, **result})
                log.info("%s", json.dumps(rows[-1]))
    chosen = choose(rows)
    return {
        "model": "minilm (onnx)",
        "connections": connections,
        "duration_s": duration,
        "rows": rows,
        "chosen": {k: chosen[k] for k in ("batch_size", "max_batch_delay_ms")},
        "rule": "highest req/s with p99 <= 1.25x the lowest p99",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    json.dump(run(args.connections, args.duration), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
