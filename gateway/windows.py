"""Per-variant numbers over a time window, read from the gateway's own Prometheus series.

A ``Snapshot`` is the cumulative counts per (route, variant) at one moment: requests, 2xx/3xx,
5xx, latency buckets, divergence sum/count, shape mismatches. The difference of two snapshots is
what happened between them. Canary analysis diffs against the start of its interval; the
status page against ~10 s ago. Reading the series (and not a private tally) means both see
every worker process of a multi-process gateway, and both agree with ``/metrics``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import Metric


class NoData(Exception):
    """There is no data for this question (yet): it cannot be judged."""


@dataclass
class Counts:
    requests: float = 0.0
    successes: float = 0.0  # 2xx and 3xx: the variant really answered
    errors: float = 0.0  # 5xx, timeouts included (the gateway answers them 504)
    buckets: dict[float, float] = field(default_factory=lambda: defaultdict(float))
    div_sum: float = 0.0
    div_count: float = 0.0
    mismatches: float = 0.0

    def minus(self, then: Counts) -> Counts:
        return Counts(
            requests=self.requests - then.requests,
            successes=self.successes - then.successes,
            errors=self.errors - then.errors,
            buckets=defaultdict(
                float, {le: n - then.buckets.get(le, 0.0) for le, n in self.buckets.items()}
            ),
            div_sum=self.div_sum - then.div_sum,
            div_count=self.div_count - then.div_count,
            mismatches=self.mismatches - then.mismatches,
        )

    def quantile_ms(self, q: float) -> float:
        return bucket_quantile(q, self.buckets) * 1000


Snapshot = dict[tuple[str, str], Counts]


def take_snapshot(families: Iterable[Metric]) -> Snapshot:
    counts: Snapshot = defaultdict(Counts)
    for family in families:
        for s in family.samples:
            key = (s.labels.get("route", ""), s.labels.get("variant", ""))
            if s.name == "servegate_requests_total":
                counts[key].requests += s.value
                if s.labels["code"].startswith("5"):
                    counts[key].errors += s.value
                elif s.labels["code"][:1] in ("2", "3"):
                    counts[key].successes += s.value
            elif s.name == "servegate_request_duration_seconds_bucket":
                counts[key].buckets[float(s.labels["le"])] += s.value
            elif s.name == "servegate_canary_divergence_sum":
                counts[key].div_sum += s.value
            elif s.name == "servegate_canary_divergence_count":
                counts[key].div_count += s.value
            elif s.name == "servegate_canary_divergence_mismatches_total":
                counts[key].mismatches += s.value
    return counts


def bucket_quantile(q: float, cumulative: dict[float, float]) -> float:
    """Prometheus' ``histogram_quantile`` on cumulative bucket counts keyed by upper bound."""
    total = cumulative.get(math.inf, 0.0)
    if total <= 0:
        raise NoData("no latency observations in this window")
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in sorted(cumulative):
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is all we know
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower
