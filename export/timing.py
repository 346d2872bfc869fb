"""Latency of a runtime per batch size: median of timed runs after warm-up."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from export.parity_inputs import seeded_example
from export.spec import ModelSpec
from handlers.runtimes import Runtime

BATCH_SIZES = (1, 8, 32)


@dataclass(frozen=True)
class TimingPlan:
    warmup: int = 2
    min_runs: int = 3
    max_runs: int = 50
    budget_s: float = 2.0  # per batch size, after warm-up


def latency_ms(runtime: Runtime, spec: ModelSpec, plan: TimingPlan) -> dict[str, float]:
    result: dict[str, float] = {}
    for batch in BATCH_SIZES:
        inputs = seeded_example(spec, spec.sizes(batch=batch, **spec.timing_sizes))
        for _ in range(plan.warmup):
            runtime.run(inputs)
        samples: list[float] = []
        deadline = time.perf_counter() + plan.budget_s
        while len(samples) < plan.min_runs or (
            len(samples) < plan.max_runs and time.perf_counter() < deadline
        ):
            start = time.perf_counter()
            runtime.run(inputs)
            samples.append((time.perf_counter() - start) * 1000)
        result[str(batch)] = round(statistics.median(samples), 3)
    return result
