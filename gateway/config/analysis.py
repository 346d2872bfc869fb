"""The ``analysis`` block of a route: how a canary is stepped up, judged and promoted.

Shaped after Flagger's ``CanaryAnalysis`` (interval, threshold, stepWeight/maxWeight, metrics),
with output divergence as a check of its own::

    analysis:
      canary: canary               # the variant under analysis; the route's first is the stable
      interval_s: 30
      steps: [5, 10, 25, 50, 100]  # or step_weight: 10 and max_weight: 50
      min_requests: 50             # canary requests an interval needs before it is judged
      threshold: 3                 # failed checks before rollback
      deadline_s: 300              # an interval short of data for this long counts as failed
      metrics:
        source: gateway            # or prometheus (with url), for several replicas
      checks:
        error_rate: {max: 0.01}
        latency: {p99_max_ms: 250, p99_max_ratio: 1.5}
        divergence: {min: 0.999}   # the shadow's compare measure (cosine here)
      on_file_edit: pause          # or refuse: a hand edit of the variants during a run

The models only validate themselves; ``schema.check_analysis`` validates an analysis against
the route it belongs to (the canary exists, the steps leave room for the other variants, a
divergence check has a comparing shadow on the canary).
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

CompareMeasure = Literal["cosine", "max_abs", "top1", "tokens"]
# Which direction is healthy for each measure: similarity must stay high, difference low.
HIGHER_IS_BETTER: dict[str, bool] = {
    "cosine": True,
    "top1": True,
    "tokens": True,
    "max_abs": False,
}
Query = Annotated[str, Field(min_length=1, max_length=4096)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorRateCheck(_Frozen):
    """Share of the canary's requests answered 5xx or timed out (client 4xx do not count)."""

    max: float = Field(ge=0, le=1)
    query: Query | None = Field(default=None, description="PromQL override (prometheus source)")


class LatencyCheck(_Frozen):
    """Canary p99 latency: an absolute bound, a ratio to stable's p99 in the same interval, or
    both."""

    p99_max_ms: float | None = Field(default=None, gt=0)
    p99_max_ratio: float | None = Field(default=None, gt=0)
    query: Query | None = None
    stable_query: Query | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> LatencyCheck:
        if self.p99_max_ms is None and self.p99_max_ratio is None:
            raise ValueError("set p99_max_ms, p99_max_ratio or both")
        return self


class DivergenceCheck(_Frozen):
    """The mean of the shadow's compare measure over the interval: ``min`` for cosine and top1
    agreement, ``max`` for max abs difference. Any answer of another shape fails the check."""

    min: float | None = None
    max: float | None = Field(default=None, ge=0)
    min_samples: StrictInt = Field(default=10, ge=1)
    query: Query | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> DivergenceCheck:
        if (self.min is None) == (self.max is None):
            raise ValueError("set exactly one of `min` (cosine, top1, tokens) or `max` (max_abs)")
        return self


class Checks(_Frozen):
    error_rate: ErrorRateCheck | None = None
    latency: LatencyCheck | None = None
    divergence: DivergenceCheck | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Checks:
        if self.error_rate is None and self.latency is None and self.divergence is None:
            raise ValueError("set at least one of error_rate, latency, divergence")
        return self


class PrometheusSource(_Frozen):
    url: Annotated[str, Field(pattern=r"^https?://[^/]+(/.*)?$")]
    # The PromQL range each query covers; at least the interval and a few scrape periods.
    window: Annotated[str | None, Field(pattern=r"^[0-9]+(ms|s|m|h)$")] = None
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    requests_query: Query | None = None


class MetricsConfig(_Frozen):
    source: Literal["gateway", "prometheus"] = "gateway"
    prometheus: PrometheusSource | None = None

    @model_validator(mode="after")
    def _prometheus_needs_url(self) -> MetricsConfig:
        if self.source == "prometheus" and self.prometheus is None:
            raise ValueError("source: prometheus needs `prometheus: {url: ...}`")
        if self.source == "gateway" and self.prometheus is not None:
            raise ValueError("`prometheus` is set but source is `gateway`")
        return self


class Analysis(_Frozen):
    canary: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    interval_s: float = Field(default=30.0, ge=0.2, le=3600)
    steps: tuple[StrictInt, ...] | None = Field(default=None, min_length=1, max_length=100)
    step_weight: StrictInt | None = Field(default=None, ge=1, le=100)
    max_weight: StrictInt = Field(default=100, ge=1, le=100)
    min_requests: StrictInt = Field(default=20, ge=1)
    threshold: StrictInt = Field(default=3, ge=1)
    deadline_s: float | None = Field(default=None, gt=0, description="default: 5 intervals")
    metrics: MetricsConfig = MetricsConfig()
    checks: Checks
    # A hand edit of the route's variants in the config file while the analysis runs: `pause`
    # applies it and pauses the analysis (`resume` re-applies the analysis' weight); `refuse`
    # rejects it like the admin API's 409 until the analysis is paused or aborted.
    on_file_edit: Literal["pause", "refuse"] = "pause"

    @model_validator(mode="after")
    def _steps(self) -> Analysis:
        if (self.steps is None) == (self.step_weight is None):
            raise ValueError("set exactly one of `steps` or `step_weight` (with `max_weight`)")
        steps = self.weights()
        if any(not 1 <= s <= 100 for s in steps):
            raise ValueError(f"steps must be weights 1-100, got {list(steps)}")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"steps must increase, got {list(steps)}")
        if self.deadline_s is not None and self.deadline_s < self.interval_s:
            raise ValueError("deadline_s must be at least interval_s")
        return self

    def weights(self) -> tuple[int, ...]:
        """The canary's weight at each step."""
        if self.steps is not None:
            return self.steps
        assert self.step_weight is not None
        ramp = list(range(self.step_weight, self.max_weight + 1, self.step_weight))
        if not ramp or ramp[-1] != self.max_weight:
            ramp.append(self.max_weight)
        return tuple(ramp)

    @property
    def deadline(self) -> float:
        return self.deadline_s if self.deadline_s is not None else 5 * self.interval_s
