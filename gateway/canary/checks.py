"""One interval's verdict: ``pass`` (every check passed), ``fail`` (some check failed) or
``nodata`` (too few canary requests, or a check without data: never a pass).

An interval in which the canary answered requests but not one of them successfully fails,
whatever the checks say: a canary that fails fast (a model its backend does not serve, a 4xx
for every request) can show a 0 error rate over no real answers and an excellent latency.

A check that cannot apply at this step is reported as skipped, not as missing data: with the
canary at 100% stable serves nothing, so neither the latency ratio to stable nor the divergence
from stable's answers can be measured there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.canary.sources import MetricSource, NoData
from gateway.canary.status import CheckResult
from gateway.config.analysis import Analysis, DivergenceCheck, LatencyCheck

Kind = Literal["pass", "fail", "nodata"]


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    checks: tuple[CheckResult, ...]
    reason: str


@dataclass(frozen=True)
class Subject:
    """What is judged: one route's canary against its stable variant at the current step."""

    route: str
    canary: str
    stable: str
    stable_weight: int


async def judge(analysis: Analysis, source: MetricSource, subject: Subject) -> Verdict:
    source.observe(subject.route)
    gate = await _answered(analysis, source, subject)
    if isinstance(gate, Verdict):
        return gate
    results = list(gate)
    checks = analysis.checks
    if checks.error_rate is not None:
        results.append(
            await _bounded(
                source,
                subject,
                "error_rate",
                "error_rate",
                checks.error_rate.query,
                upper=checks.error_rate.max,
            )
        )
    if checks.latency is not None:
        results.extend(await _latency(source, subject, checks.latency))
    if checks.divergence is not None:
        results.extend(await _divergence(source, subject, checks.divergence))
    failed = [r for r in results if r.passed is False]
    if failed:
        reason = "; ".join(f"{r.name} {_fmt(r.value)} (want {r.bound})" for r in failed)
        return Verdict("fail", tuple(results), reason)
    missing = [r for r in results if r.passed is None and not r.detail.startswith("skipped")]
    if missing:
        reason = "; ".join(f"{r.name}: {r.detail}" for r in missing)
        return Verdict("nodata", tuple(results), reason)
    return Verdict("pass", tuple(results), "every check passed")


async def _bounded(
    source: MetricSource,
    subject: Subject,
    name: str,
    question: str,
    query: str | None,
    *,
    upper: float | None = None,
    lower: float | None = None,
) -> CheckResult:
    bound = f"<= {upper:g}" if upper is not None else f">= {lower:g}"
    try:
        value = await source.value(question, subject.route, subject.canary, query)  # type: ignore[arg-type]
    except NoData as exc:
        return CheckResult(name=name, value=None, bound=bound, passed=None, detail=str(exc))
    passed = value <= upper if upper is not None else value >= (lower or 0.0)
    return CheckResult(name=name, value=value, bound=bound, passed=passed)


async def _latency(
    source: MetricSource, subject: Subject, check: LatencyCheck
) -> list[CheckResult]:
    out: list[CheckResult] = []
    if check.p99_max_ms is not None:
        out.append(
            await _bounded(
                source, subject, "latency_p99_ms", "p99_ms", check.query, upper=check.p99_max_ms
            )
        )
    if check.p99_max_ratio is None:
        return out
    name, bound = "latency_p99_ratio", f"<= {check.p99_max_ratio:g}"
    if subject.stable_weight == 0:
        out.append(_skipped(name, bound))
        return out
    try:
        canary = await source.value("p99_ms", subject.route, subject.canary, check.query)
        stable = await source.value("p99_ms", subject.route, subject.stable, check.stable_query)
    except NoData as exc:
        out.append(CheckResult(name=name, value=None, bound=bound, passed=None, detail=str(exc)))
        return out
    ratio = canary / stable if stable > 0 else float("inf")
    out.append(
        CheckResult(name=name, value=ratio, bound=bound, passed=ratio <= check.p99_max_ratio)
    )
    return out


async def _divergence(
    source: MetricSource, subject: Subject, check: DivergenceCheck
) -> list[CheckResult]:
    bound = f">= {check.min:g}" if check.min is not None else f"<= {check.max:g}"
    if subject.stable_weight == 0:
        return [_skipped("divergence", bound)]
    try:
        samples = await source.value("divergence_samples", subject.route, subject.canary)
        mismatches = await source.value("divergence_mismatches", subject.route, subject.canary)
    except NoData as exc:
        return [
            CheckResult(name="divergence", value=None, bound=bound, passed=None, detail=str(exc))
        ]
    if mismatches > 0:
        detail = f"{mismatches:.0f} canary answers had another shape than stable's"
        return [
            CheckResult(name="divergence", value=None, bound=bound, passed=False, detail=detail)
        ]
    if samples < check.min_samples:
        detail = f"{samples:.0f} shadow comparisons, need {check.min_samples}"
        return [CheckResult(name="divergence", value=None, bound=bound, passed=None, detail=detail)]
    return [
        await _bounded(
            source,
            subject,
            "divergence",
            "divergence",
            check.query,
            upper=check.max,
            lower=check.min,
        )
    ]


async def _answered(
    analysis: Analysis, source: MetricSource, subject: Subject
) -> Verdict | tuple[CheckResult, ...]:
    """Enough canary requests, some of them answered successfully: the checks that say so,
    or the verdict (``nodata``, ``fail``) that ends the judgement here."""
    need = analysis.min_requests
    try:
        n = await source.value("requests", subject.route, subject.canary)
    except NoData as exc:
        result = CheckResult(name="requests", value=None, bound=f">= {need}", passed=None)
        return Verdict("nodata", (result.model_copy(update={"detail": str(exc)}),), str(exc))
    if n < need:
        detail = "too few to judge"
        requests = CheckResult(
            name="requests", value=n, bound=f">= {need}", passed=None, detail=detail
        )
        return Verdict("nodata", (requests,), f"{n:.0f} canary requests, need {need}")
    requests = CheckResult(name="requests", value=n, bound=f">= {need}", passed=True)
    try:
        ok = await source.value("successes", subject.route, subject.canary)
    except NoData as exc:
        return Verdict("nodata", (requests,), str(exc))
    if ok <= 0:
        detail = "the canary answered no request successfully"
        successes = CheckResult(
            name="successes", value=ok, bound="> 0", passed=False, detail=detail
        )
        return Verdict("fail", (requests, successes), f"{detail} ({n:.0f} requests)")
    return requests, CheckResult(name="successes", value=ok, bound="> 0", passed=True)


def _skipped(name: str, bound: str) -> CheckResult:
    detail = "skipped: stable serves no traffic at this step"
    return CheckResult(name=name, value=None, bound=bound, passed=None, detail=detail)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"
