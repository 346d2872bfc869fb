"""The canary analysis loop and the operator's actions on it.

Each ``interval_s`` of an analysing route is judged (``checks.judge``):

    pass    advance one step (the canary's weight rises to the next step); after the last
            step, promote: the stable variant takes the canary's model at 100%
    fail    one more failed check; at ``threshold`` roll back: canary to 0%
    nodata  hold; once nothing could be judged for ``deadline_s`` it counts as a failed check

A run ends promoted, rolled back or aborted; the route is then ``idle`` again and the ending is
kept as its ``last_run`` (``status.py``), as Flagger and Argo Rollouts keep a finished analysis.

Decisions change weights through ``gateway.config.changes.apply_change``, the path an admin
change takes too (validated, written atomically, audited with who = ``canary-analysis``). The
status (phase, step, failed checks, last checks, reason) is persisted before the weights it
implies, so a restart resumes at the recorded step and re-applies that step's weight if the
config had not caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from gateway.canary.checks import Subject, Verdict, judge
from gateway.canary.collector import CanaryCollector
from gateway.canary.sources import MetricSource, make_source
from gateway.canary.status import ACTIVE, Outcome, RouteStatus, RunResult, StatusStore, now_iso
from gateway.config import Analysis, Route
from gateway.config.changes import Change, apply_change
from gateway.config.edit import with_promotion, with_weights
from gateway.errors import AnalysisRunning, ConfigReadOnly, GatewayError, ModelNotFound
from gateway.state import Gateway

log = logging.getLogger(__name__)
ANALYSIS = "canary-analysis"
TICK_S = 0.1


class CanaryController:
    def __init__(
        self,
        gw: Gateway,
        store: StatusStore,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gw = gw
        self.store = store
        self.enabled = enabled
        self.clock = clock
        self._sources: dict[str, tuple[object, MetricSource]] = {}
        gw.metrics.add_collector(CanaryCollector(lambda: gw.table.loaded.config, self.status))
        self._interval_start: dict[str, float] = {}
        self._waiting_since: dict[str, float] = {}

    # --- queries -------------------------------------------------------------------------

    def holds_weights(self, route: str) -> bool:
        return self.store.get(route).phase == "analysing"

    def status(self, route: str) -> RouteStatus:
        return self.store.get(route)

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        await self._reconcile()
        while True:
            for name in [n for n, s in self.store.routes.items() if s.phase == "analysing"]:
                try:
                    await self.tick(name)
                except GatewayError as exc:  # e.g. the config cannot be written here
                    await self._halt(name, exc.message)
                except Exception:  # one route's trouble must not stop the others
                    log.exception("canary analysis of %s failed this tick", name)
            await asyncio.sleep(TICK_S)

    async def aclose(self) -> None:
        for _, source in self._sources.values():
            await source.aclose()

    async def _halt(self, name: str, why: str) -> None:
        log.error("%s: canary analysis paused: %s", name, why)
        async with self.gw.admin_lock:
            status = self.store.get(name)
            with contextlib.suppress(GatewayError):
                self._record(name, status, "pause", f"paused: {why}", phase="paused")

    async def _reconcile(self) -> None:
        """After a restart: re-apply a recorded step whose weight the config does not show."""
        for name, status in list(self.store.routes.items()):
            route = self.gw.table.loaded.config.routes.get(name)
            if status.phase not in ACTIVE or route is None or route.analysis is None:
                continue
            current = route.variant(status.canary)
            if current is not None and current.weight != status.weight:
                log.warning(
                    "%s: config has %s at %d%%, the analysis recorded %d%%: re-applying",
                    name,
                    status.canary,
                    current.weight,
                    status.weight,
                )
                async with self.gw.admin_lock:
                    self._set_canary_weight(
                        name, route, status.weight, action="canary_resume", who=ANALYSIS
                    )
            log.info(
                "%s: canary analysis resumes at step %d (%d%%)", name, status.step, status.weight
            )

    async def tick(self, name: str) -> None:
        """Judge `name` once its interval is over (the loop calls this every `TICK_S`)."""
        route = self.gw.table.loaded.config.routes.get(name)
        if route is None or route.analysis is None:
            return  # the route or its analysis left the config: hold until it is back
        analysis = route.analysis
        source = self._source(name, analysis)
        now = self.clock()
        if name not in self._interval_start:
            self._begin(name, source, now, waiting=True)
            return
        if now - self._interval_start[name] < analysis.interval_s:
            return
        stable = route.stable
        verdict = await judge(
            analysis, source, Subject(name, analysis.canary, stable.name, stable.weight)
        )
        self._begin(name, source, self.clock(), waiting=verdict.kind != "nodata")
        async with self.gw.admin_lock:
            if self.store.get(name).phase == "analysing":  # an operator may have acted meanwhile
                self._decide(name, route, analysis, verdict, now)

    def _decide(
        self, name: str, route: Route, analysis: Analysis, verdict: Verdict, now: float
    ) -> None:
        status = self.store.get(name)
        checks = verdict.checks
        steps = analysis.weights()
        if verdict.kind == "pass":
            if status.step + 1 >= len(steps):
                reason = "every step passed"
                self._promote(name, status.canary, ANALYSIS, reason, last_checks=checks)
                return
            step = status.step + 1
            self._count(name, "advance")
            self._record(
                name,
                status,
                "advance",
                verdict.reason,
                step=step,
                weight=steps[step],
                last_checks=checks,
            )
            self._set_canary_weight(
                name,
                route,
                steps[step],
                action="canary_advance",
                who=ANALYSIS,
                reason=f"step {step + 1}/{len(steps)}: {verdict.reason}",
            )
            return
        if verdict.kind == "nodata" and now - self._waiting_since[name] < analysis.deadline:
            self._count(name, "hold")
            reason = f"waiting for data: {verdict.reason}"
            self._record(name, status, "hold", reason, last_checks=checks)
            return
        reason = verdict.reason
        if verdict.kind == "nodata":
            reason = f"no verdict for {analysis.deadline:g}s: {verdict.reason}"
            self._waiting_since[name] = now
        failed = status.failed_checks + 1
        self._count(name, "fail")
        if failed >= analysis.threshold:
            reason = f"{failed} failed checks; last: {reason}"
            self._rollback(
                name, route, status, ANALYSIS, reason, failed_checks=failed, last_checks=checks
            )
            return
        self._record(name, status, "fail", reason, failed_checks=failed, last_checks=checks)

    # --- operator actions (the admin API calls these holding gw.admin_lock) -----------------

    def start(self, name: str, who: str) -> RouteStatus:
        route, analysis = self._analysed(name)
        current = self.store.get(name)
        if current.phase in ACTIVE:
            raise AnalysisRunning(f"{name} is {current.phase} already; abort it to start over")
        canary = route.variant(analysis.canary)
        _check_startable(name, route, analysis)
        readiness = self.gw.readiness.get(canary) if canary is not None else None
        if readiness is not None and not readiness.ready:
            raise AnalysisRunning(
                f"cannot start {name}: canary variant {analysis.canary!r} is not ready "
                f"({readiness.detail})"
            )
        weight = analysis.weights()[0]
        self._put(
            name,
            RouteStatus(
                phase="analysing",
                canary=analysis.canary,
                step=0,
                weight=weight,
                last_decision="start",
                reason=f"started by {who}",
                started_at=now_iso(),
                last_run=current.last_run,
            ),
        )
        try:
            self._set_canary_weight(name, route, weight, action="canary_start", who=who)
        except GatewayError:
            self._put(name, current)  # nothing started: the config could not take the weight
            raise
        self._interval_start.pop(name, None)
        return self.store.get(name)

    def file_edited(self, name: str, what: str) -> None:
        """A hand edit of the route's variants applied during the run (``on_file_edit: pause``):
        the analysis stops setting weights until an operator resumes it (callers hold
        ``gw.admin_lock``)."""
        current = self.store.get(name)
        if current.phase != "analysing":
            return
        reason = (
            f"paused: {what} changed the variants by hand; `servegate canary resume {name}` "
            "re-applies the analysis weight, `abort` ends the run"
        )
        log.warning("%s: canary analysis %s", name, reason)
        self._record(name, current, "pause", reason, phase="paused")

    def pause(self, name: str, who: str) -> RouteStatus:
        current = self._in_phase(name, ("analysing",), "pause")
        self._record(name, current, "pause", f"paused by {who}", phase="paused")
        return self.store.get(name)

    def resume(self, name: str, who: str) -> RouteStatus:
        route, _ = self._analysed(name)
        current = self._in_phase(name, ("paused",), "resume")
        self._record(name, current, "resume", f"resumed by {who}", phase="analysing")
        variant = route.variant(current.canary)
        if variant is not None and variant.weight != current.weight:
            self._set_canary_weight(name, route, current.weight, action="canary_resume", who=who)
        self._interval_start.pop(name, None)
        return self.store.get(name)

    def promote(self, name: str, who: str) -> RouteStatus:
        current = self._in_phase(name, ACTIVE, "promote")  # checks the route's analysis too
        self._promote(name, current.canary, who, f"promoted by {who}")
        return self.store.get(name)

    def abort(self, name: str, who: str) -> RouteStatus:
        route, _ = self._analysed(name)
        current = self._in_phase(name, ACTIVE, "abort")
        self._rollback(name, route, current, who, f"aborted by {who}", outcome="aborted")
        return self.store.get(name)

    # --- helpers ---------------------------------------------------------------------------

    def _promote(self, name: str, canary: str, who: str, reason: str, **fields: Any) -> None:
        change = Change(route=name, action="canary_promote", who=who, reason=reason)
        previous = self._finish(name, "promoted", "promote", reason, **fields)
        try:
            when = f"on {now_iso()[:10]}"
            apply_change(
                self.gw,
                change,
                lambda raw, config: with_promotion(raw, name, config, canary, when),
            )
        except GatewayError:
            self._put(name, previous)  # not promoted: the run goes on (or pauses) as it was
            raise
        self._count(name, "promote")
        log.info("%s: canary %s promoted (%s)", name, canary, reason)

    def _rollback(
        self,
        name: str,
        route: Route,
        status: RouteStatus,
        who: str,
        reason: str,
        *,
        outcome: Outcome = "rolled_back",
        **fields: Any,
    ) -> None:
        decision = "abort" if outcome == "aborted" else "rollback"
        previous = self._finish(name, outcome, decision, reason, **fields)
        try:
            self._set_canary_weight(
                name, route, 0, action=f"canary_{decision}", who=who, reason=reason
            )
        except GatewayError:
            self._put(name, previous)
            raise
        self._count(name, decision)
        log.warning("%s: canary %s %s: %s", name, status.canary, outcome.replace("_", " "), reason)

    def _finish(
        self, name: str, outcome: Outcome, decision: str, reason: str, **fields: Any
    ) -> RouteStatus:
        """End the run: the route goes back to idle with this ending as its last run. Returns
        the status before, for a caller whose config change then fails to restore."""
        status = self.store.get(name)
        run = {
            "step": status.step,
            "weight": status.weight,
            "failed_checks": status.failed_checks,
            "last_checks": status.last_checks,
            **fields,
        }
        result = RunResult(
            outcome=outcome,
            canary=status.canary,
            reason=reason,
            started_at=status.started_at,
            **run,
        )
        self._put(
            name,
            RouteStatus(
                phase="idle",
                canary=status.canary,
                last_decision=decision,
                reason=reason,
                last_run=result,
            ),
        )
        return status

    def _set_canary_weight(
        self, name: str, route: Route, weight: int, *, action: str, who: str, reason: str = ""
    ) -> None:
        canary = self.store.get(name).canary
        others = {
            v.name: v.weight for v in route.variants if v.name not in (route.stable.name, canary)
        }
        weights = {**others, canary: weight, route.stable.name: 100 - sum(others.values()) - weight}
        change = Change(route=name, action=action, who=who, reason=reason)
        apply_change(self.gw, change, lambda raw, _config: with_weights(raw, name, weights))

    def _analysed(self, name: str) -> tuple[Route, Analysis]:
        route = self.gw.table.loaded.config.routes.get(name)
        if route is None:
            raise ModelNotFound(f"route not found: {name}")
        if route.analysis is None:
            raise AnalysisRunning(f"route {name} has no `analysis` block in gateway.yaml")
        if not self.enabled:
            raise AnalysisRunning(
                "canary analysis is off in this gateway (SERVEGATE_GATEWAY_CANARY_ANALYSIS="
                "false); act on the replica that runs it"
            )
        return route, route.analysis

    def _in_phase(self, name: str, phases: tuple[str, ...], action: str) -> RouteStatus:
        self._analysed(name)
        current = self.store.get(name)
        if current.phase not in phases:
            raise AnalysisRunning(f"cannot {action} {name}: it is {current.phase}")
        return current

    def _source(self, name: str, analysis: Analysis) -> MetricSource:
        key = (analysis.metrics, analysis.interval_s)
        cached = self._sources.get(name)
        if cached is None or cached[0] != key:
            if cached is not None:
                asyncio.get_running_loop().create_task(cached[1].aclose())
            source = make_source(self.gw.metrics, analysis.metrics.prometheus, analysis.interval_s)
            self._sources[name] = (key, source)
            self._interval_start.pop(name, None)
        return self._sources[name][1]

    def _begin(self, name: str, source: MetricSource, now: float, *, waiting: bool) -> None:
        source.begin(name)
        self._interval_start[name] = now
        if waiting or name not in self._waiting_since:
            self._waiting_since[name] = now

    def _record(
        self, name: str, status: RouteStatus, decision: str, reason: str, **fields: Any
    ) -> None:
        """Persist ``status`` with this decision, its reason and ``fields``, stamped now."""
        stamp = {"last_decision": decision, "reason": reason, "updated_at": now_iso()}
        self._put(name, status.model_copy(update={**fields, **stamp}))

    def _put(self, name: str, status: RouteStatus) -> None:
        try:
            self.store.put(name, status)
        except OSError as exc:
            raise ConfigReadOnly(
                f"cannot write the canary status {self.store.path.name} ({exc.strerror}); "
                "canary analysis needs a writable config directory"
            ) from None

    def _count(self, name: str, decision: str) -> None:
        self.gw.metrics.canary_decisions.labels(name, decision).inc()


def _check_startable(name: str, route: Route, analysis: Analysis) -> None:
    """A run needs a canary that differs from stable (after a promotion the canary slot serves
    stable's own model until an operator puts the next one there) and, for a divergence check,
    the comparing shadow that the promotion removed."""
    canary = route.variant(analysis.canary)
    stable = route.stable
    if canary is not None and (canary.backend, canary.model, canary.version) == (
        stable.backend,
        stable.model,
        stable.version,
    ):
        raise AnalysisRunning(
            f"cannot start {name}: canary {analysis.canary!r} serves the same model as "
            f"{stable.name!r} ({stable.model}/{stable.version}); put the next model in it first"
        )
    shadow = route.shadow
    if analysis.checks.divergence is not None and (
        shadow is None or shadow.variant != analysis.canary or shadow.compare is None
    ):
        raise AnalysisRunning(
            f"cannot start {name}: its divergence check needs `shadow: {{variant: "
            f"{analysis.canary}, percent: ..., compare: ...}}` on the route"
        )
