"""``make bench``: the CPU suite, one run, results and plots written where docs/benchmarks.md
reads them.

    .venv/bin/python -m bench.suite [--results bench/results] [--plots docs/img] [--quick]

Writes ``<results>/<date>-cpu.json`` and ``<results>/<date>-cpu.md`` (the summary) and the CPU
plots. Steps: runtime formats (bench.formats), TorchServe overhead against the stock handler
(bench.serving), the dynamic batching sweep (bench.batching), and the gateway's HTTP and gRPC
overhead (bench.gateway, bench.grpc, run as they are and read from their output). A step that
fails is recorded with its error; the others still run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import batching, formats, serving
from bench.environment import cpu_environment
from bench.plots import cpu_plots
from bench.summary import cpu_summary

log = logging.getLogger("bench")


def gateway_step(module: str, args: list[str]) -> dict[str, Any]:
    """Run ``bench.gateway``/``bench.grpc`` unchanged; keep its table and every round."""
    argv = [sys.executable, "-m", module, *args]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=900).stdout
    table = [line for line in out.splitlines() if not line.startswith("every round: ")]
    rounds = next(line for line in out.splitlines() if line.startswith("every round: "))
    runs = json.loads(rounds.removeprefix("every round: "))
    pairs = list(zip(runs["direct"], runs["gateway"], strict=True))
    return {
        "argv": args,
        "table": table,
        "throughput_ratio": sorted(g["rps"] / d["rps"] for d, g in pairs)[len(pairs) // 2],
        "added_p50_ms": sorted(g["p50_ms"] - d["p50_ms"] for d, g in pairs)[len(pairs) // 2],
        "rounds": runs,
    }


def steps(quick: bool) -> dict[str, Callable[[], dict[str, Any]]]:
    seconds = "5" if quick else "8"
    return {
        "formats": lambda: formats.run(rounds=3 if quick else 9),
        "serving": lambda: serving.run(requests=200 if quick else 400, rounds=3),
        "batching": lambda: batching.run(connections=16, duration=5 if quick else 8),
        "gateway_http": lambda: gateway_step(
            "bench.gateway", ["--duration", seconds, "--rounds", "2", "--batch-size", "1"]
        ),
        "gateway_grpc": lambda: gateway_step(
            "bench.grpc", ["--duration", seconds, "--rounds", "2", "--batch-size", "1"]
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=Path("bench/results"))
    parser.add_argument("--plots", type=Path, default=Path("docs/img"))
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test)")
    parser.add_argument("--only", default="", help="comma-separated steps (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    date = datetime.date.today().isoformat()
    json_path = args.results / f"{date}-cpu.json"
    wanted = set(filter(None, args.only.split(",")))
    result: dict[str, Any] = {"date": date, "environment": cpu_environment()}
    if wanted and json_path.is_file():  # re-running some steps: keep today's others
        result = json.loads(json_path.read_text()) | result
    for name, step in steps(args.quick).items():
        if wanted and name not in wanted:
            continue
        log.info("== %s", name)
        try:
            result[name] = step()
        except Exception as exc:  # one broken step must not lose the others' results
            log.exception("step %s failed", name)
            result[name] = {"error": repr(exc)[:1000]}
    args.results.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    args.plots.mkdir(parents=True, exist_ok=True)
    plots = cpu_plots(result, args.plots)
    summary = cpu_summary(result, plots)
    (args.results / f"{date}-cpu.md").write_text(summary)
    sys.stdout.write(summary)
    log.info("wrote %s, %s and %d plot(s)", json_path, json_path.with_suffix(".md"), len(plots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
