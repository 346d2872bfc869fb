"""Runtime formats on CPU against eager PyTorch, interleaved in one run.

Each model is exported with the real pipeline (so every format here passed parity: a format
that fails is listed with its reason and not timed), then every runtime runs the same inputs
in turn, round after round: a round's ratio eager/format comes from the same few seconds of
this shared, noisy machine, and the speedup reported is the median of those ratios.

    .venv/bin/python -m bench.formats [--rounds 5] [--models minilm] > formats.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.common import quick_export
from export.registry import resolve
from export.report import FormatReport
from handlers.manifest import Format, Precision
from handlers.runtimes import Runtime, load_runtime
from handlers.runtimes.compiled import CompiledRuntime
from handlers.runtimes.eager import EagerRuntime

log = logging.getLogger("bench")
ARTIFACT = {
    "torchscript": "model.torchscript.pt",
    "aoti": "model.pt2",
    "onnx": "model.onnx",
    "onnx_int8": "model.onnx",
}


@dataclass(frozen=True)
class Case:
    model: str
    formats: tuple[Format, ...]
    batches: tuple[int, ...] = (1, 8, 32)
    seq: int = 0  # 0: the model has no sequence axis
    seq_sweep: tuple[int, ...] = ()  # at batch 8, for the cost-vs-length plot
    # The compile format, exported once per precision (its own export: precision is per export).
    compile_precisions: tuple[Precision, ...] = ()


CASES = (
    Case(
        "minilm",
        ("torchscript", "aoti", "onnx", "onnx_int8"),
        seq=128,
        seq_sweep=(32, 64, 256),
        compile_precisions=("fp32", "bf16"),
    ),
    Case("resnet18", ("torchscript", "aoti", "onnx")),
)


def compile_name(precision: Precision) -> str:
    return "compile" if precision == "fp32" else f"compile_{precision}"


def export_all(case: Case, out: Path) -> tuple[dict[str, Any], dict[str, Runtime]]:
    """Every format that passed parity, loaded; the parity verdict of each by runtime name."""
    cpu = torch.device("cpu")
    report = quick_export(case.model, out, case.formats)
    spec = resolve(case.model)
    runtimes: dict[str, Runtime] = {"eager": EagerRuntime(spec.build(None), cpu)}
    parity = {fmt: _parity(r) for fmt, r in report.formats.items()}
    for fmt, result in report.formats.items():
        if result.parity_ok:
            artifact = out / case.model / fmt / "artifact" / ARTIFACT[fmt]
            runtimes[fmt] = load_runtime(fmt, artifact, cpu)
    for precision in case.compile_precisions:
        name, where = compile_name(precision), out / compile_name(precision)
        compiled = quick_export(case.model, where, ("compile",), precision=precision)
        parity[name] = _parity(compiled.formats["compile"])
        if compiled.formats["compile"].parity_ok:
            settings = where / case.model / "compile" / "artifact" / "compile.json"
            runtimes[name] = CompiledRuntime.load(settings, cpu)
    return parity, runtimes


def _parity(r: FormatReport) -> dict[str, Any]:
    return {
        "verified": r.parity_ok,
        "max_abs_err": r.max_abs_err,
        "min_cosine": r.min_cosine,
        "error": r.error,
    }


def interleaved(
    runtimes: dict[str, Runtime], inputs: tuple[torch.Tensor, ...], rounds: int
) -> dict[str, list[float]]:
    """Seconds per call of each runtime, ``rounds`` times, in turn (after one warm-up each)."""
    for runtime in runtimes.values():
        runtime.run(inputs)
    samples: dict[str, list[float]] = {name: [] for name in runtimes}
    for _ in range(rounds):
        for name, runtime in runtimes.items():
            started = time.perf_counter()
            runtime.run(inputs)
            samples[name].append(time.perf_counter() - started)
    return samples


def rows_for(
    case: Case, runtimes: dict[str, Runtime], batch: int, seq: int, rounds: int
) -> list[dict[str, Any]]:
    spec = resolve(case.model)
    sizes = spec.sizes(batch=batch, **({"sequence": seq} if seq else {}))
    samples = interleaved(runtimes, spec.example_inputs(sizes), rounds)
    eager = samples["eager"]
    rows = []
    for name, times in samples.items():
        latency = statistics.median(times)
        speedup = statistics.median(e / t for e, t in zip(eager, times, strict=True))
        rows.append(
            {
                "model": case.model,
                "format": name,
                "batch": batch,
                "seq": seq,
                "latency_ms": round(latency * 1000, 2),
                "items_per_s": round(batch / latency, 1),
                "speedup_vs_eager": round(speedup, 3),
            }
        )
        log.info("%s", json.dumps(rows[-1]))
    return rows


def run_case(case: Case, out: Path, rounds: int) -> dict[str, Any]:
    parity, runtimes = export_all(case, out)
    rows = [r for b in case.batches for r in rows_for(case, runtimes, b, case.seq, rounds)]
    for seq in case.seq_sweep:
        rows += rows_for(case, runtimes, 8, seq, rounds)
    return {"parity": parity, "rows": rows}


def run(rounds: int, models: tuple[str, ...] = ()) -> dict[str, Any]:
    result: dict[str, Any] = {"threads": torch.get_num_threads(), "rounds": rounds, "models": {}}
    with tempfile.TemporaryDirectory(prefix="bench-formats-") as tmp:
        for case in CASES:
            if not models or case.model in models:
                result["models"][case.model] = run_case(case, Path(tmp), rounds)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", nargs="+", choices=[c.model for c in CASES], default=())
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    json.dump(run(args.rounds, tuple(args.models)), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
