"""TorchServe's per-request overhead with servegate's handler against TorchServe's stock
``BaseHandler`` (``bench/stock_handler.py``), on the same TorchScript ``mlp`` in one TorchServe,
batch size 1, sequential requests, alternating rounds. Overhead = client latency minus the
handler's own time (``X-Servegate-Handler-Ms``).

    .venv/bin/python -m bench.serving [--requests 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from model_archiver.model_archiver import ModelArchiver
from model_archiver.model_archiver_config import ModelArchiverConfig

from bench import stock_handler
from bench.common import quick_export, torchserve
from bench.ts_overhead import measure

log = logging.getLogger("bench")
STOCK = "mlp_stock"


def stock_archive(artifact: Path, store: Path, stage: Path) -> None:
    stage.mkdir(parents=True, exist_ok=True)
    config = stage / "model-config.yaml"
    config.write_text(yaml.safe_dump({"batchSize": 1, "minWorkers": 1, "maxWorkers": 1}))
    ModelArchiver.generate_model_archive(
        ModelArchiverConfig(
            model_name=STOCK,
            handler=stock_handler.__file__,
            version="1.0",
            serialized_file=str(artifact),
            export_path=str(store),
            config_file=str(config),
            force=True,
        )
    )


def run(requests: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        store = Path(tmp) / "store"
        quick_export("mlp", store, ("torchscript",), serving={"batch_size": 1})
        artifact = store / "mlp" / "torchscript" / "artifact" / "model.torchscript.pt"
        stock_archive(artifact, store, Path(tmp) / "stage")
        runs: dict[str, list[dict[str, float]]] = {"servegate": [], "stock": []}
        with torchserve(store, Path(tmp) / "ts") as server:
            url, key = server.settings.url("inference"), server.keys().inference.key
            for _ in range(rounds):
                runs["servegate"].append(measure(url, key, "mlp_torchscript", requests))
                runs["stock"].append(measure(url, key, STOCK, requests))
                log.info("round: %s", json.dumps({k: v[-1] for k, v in runs.items()}))
    pairs = list(zip(runs["servegate"], runs["stock"], strict=True))
    return {
        "model": "mlp (TorchScript), batch size 1, sequential requests",
        "requests_per_round": requests,
        "latency_ratio_servegate_over_stock": round(
            statistics.median(s["latency_p50_ms"] / b["latency_p50_ms"] for s, b in pairs), 3
        ),
        "overhead_p50_ms": {
            k: round(statistics.median(r["overhead_p50_ms"] for r in v), 3) for k, v in runs.items()
        },
        "handler_p50_ms": {
            k: round(statistics.median(r["handler_p50_ms"] for r in v), 3) for k, v in runs.items()
        },
        "rounds": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    json.dump(run(args.requests, args.rounds), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
