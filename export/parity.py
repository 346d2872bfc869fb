"""Parity: a reloaded artifact against eager, on inputs other than the export inputs
(``export.parity_inputs``: seeded, and real sentences for text tasks)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from export.parity_inputs import Case
from export.spec import ModelSpec
from handlers.runtimes import Runtime
from handlers.runtimes.eager import EagerRuntime


@dataclass(frozen=True)
class Parity:
    ok: bool
    max_abs_err: float
    reason: str | None = None
    min_cosine: float | None = None


class EagerReference:
    """Eager outputs per parity input, computed once and shared by every format."""

    def __init__(self, cases: list[Case], eager: EagerRuntime) -> None:
        self.cases = [(case.label, case.inputs, eager.run(case.inputs)) for case in cases]

    def check(self, runtime: Runtime, spec: ModelSpec) -> Parity:
        worst = 0.0
        tol = spec.tolerance
        for label, inputs, expected in self.cases:
            actual = runtime.run(inputs)
            if actual.shape != expected.shape:
                return Parity(
                    False,
                    float("inf"),
                    f"shape {list(actual.shape)} at {label}, eager gives {list(expected.shape)}",
                )
            if not torch.isfinite(actual).all():
                return Parity(False, float("inf"), f"non-finite output at {label}")
            err = (actual.double() - expected.double()).abs()
            worst = max(worst, float(err.max()))
            bound = tol.atol + tol.rtol * expected.double().abs()
            if bool((err > bound).any()):
                return Parity(
                    False,
                    worst,
                    f"max abs error {worst:.3g} at {label} exceeds atol={tol.atol} rtol={tol.rtol}",
                )
        return Parity(True, worst)

    def check_cosine(self, runtime: Runtime, spec: ModelSpec) -> Parity:
        """Quantised formats: every output row's cosine similarity to eager's."""
        worst_err, worst_cos = 0.0, 1.0
        for label, inputs, expected in self.cases:
            actual = runtime.run(inputs)
            if actual.shape != expected.shape or not torch.isfinite(actual).all():
                return Parity(False, float("inf"), f"shape or non-finite output at {label}")
            a, e = actual.double().flatten(1), expected.double().flatten(1)
            worst_err = max(worst_err, float((a - e).abs().max()))
            worst_cos = min(worst_cos, float(torch.nn.functional.cosine_similarity(a, e).min()))
            if worst_cos < spec.tolerance.min_cosine:
                reason = (
                    f"cosine {worst_cos:.4f} at {label} below {spec.tolerance.min_cosine} "
                    "(a spec whose users accept less sets tolerance.min_cosine)"
                )
                return Parity(False, worst_err, reason, worst_cos)
        return Parity(True, worst_err, min_cosine=worst_cos)
