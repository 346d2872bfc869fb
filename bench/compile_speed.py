"""A ``compile`` archive's runtime against eager fp32, interleaved in one process.

    python -m bench.compile_speed OUT/minilm/compile/artifact/compile.json --rounds 7

Eager and the archive's runtime (``handlers.runtimes.compiled``) run the same seeded batch in
turn, round after round; the speedup is the median of per-round ratios, so that load from other
work on the machine hits both alike (docs/export.md quotes it for MiniLM).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import torch

from export.parity_inputs import seeded_example
from handlers.runtimes import Runtime
from handlers.runtimes.compile_settings import CompileSettings
from handlers.runtimes.compiled import CompiledRuntime
from handlers.runtimes.eager import EagerRuntime
from handlers.runtimes.spec_module import import_spec_file

log = logging.getLogger("bench.compile_speed")


def _timed(runtime: Runtime, inputs: tuple[torch.Tensor, ...]) -> float:
    started = time.perf_counter()
    runtime.run(inputs)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", type=Path, help="compile.json of an exported archive")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--sequence", type=int, default=128, help="text models only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = CompileSettings.read(args.settings)
    spec = import_spec_file(args.settings.parent / settings.spec_file, settings.spec_attr)
    cpu = torch.device("cpu")
    eager = EagerRuntime(spec.build(None), cpu)
    compiled = CompiledRuntime.load(args.settings, cpu)
    sizes = {
        "batch": args.batch,
        **({"sequence": args.sequence} if "sequence" in spec.dims else {}),
    }
    inputs = seeded_example(spec, spec.sizes(**sizes))
    for runtime in (eager, compiled):
        runtime.run(inputs)  # compiles, or loads from the cache
        runtime.run(inputs)
    eager_s, compiled_s = [], []
    for _ in range(args.rounds):
        eager_s.append(_timed(eager, inputs))
        compiled_s.append(_timed(compiled, inputs))
    ratios = [e / c for e, c in zip(eager_s, compiled_s, strict=True)]
    log.info(
        "%s %s at %s: eager %.0f ms, compile %.0f ms (medians), %.2fx eager (median of %d rounds)",
        spec.name,
        settings.precision,
        sizes,
        statistics.median(eager_s) * 1000,
        statistics.median(compiled_s) * 1000,
        statistics.median(ratios),
        args.rounds,
    )


if __name__ == "__main__":
    main()
