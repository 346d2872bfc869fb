"""The rollout's steps, each recorded in the route's rollout state before the next begins.

    registering    the archive is checked (name, pin, manifest) and loaded into the running
                   TorchServe beside every model there (``servegate.torchserve.registry``)
    warming        warm-up requests to TorchServe itself; one that is not 200 refuses it
    entering       the route's canary variant takes the new version at weight 0 (admin API,
                   audited); its shadow, when the route has one, copies traffic to it now
    waiting_ready  until the gateway sees that variant ready
    analysing      the route's canary analysis moves the traffic (admin API), promotes it or
                   rolls it back; this command follows it
    retiring       promoted: after the grace period the previous version is unloaded
    restoring      rolled back or aborted: the canary variant is put back as it was (the route
                   compared with the copy taken at the start) and the new version unloaded

Nothing before ``analysing`` sends client traffic to the new version (weight 0), so every
refusal up to there leaves the route as it was and unloads what was loaded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.admin.client import AdminClient, AdminClientError
from handlers.manifest import archive_file_name
from servegate.rollout.candidate import Candidate, RolloutRefused
from servegate.rollout.state import Phase, RolloutState, RolloutStore, alive
from servegate.torchserve.identity import ServedAs, served_as
from servegate.torchserve.keys import KeyFile
from servegate.torchserve.registry import Registry, RegistryError
from servegate.torchserve.warmup import WarmUpFailed, warm_up

log = logging.getLogger("servegate.rollout")
ACTOR_REASON = "servegate rollout"


@dataclass(frozen=True)
class Timing:
    grace_s: float = 30.0  # after a promotion, before the previous version is unloaded
    ready_timeout_s: float = 120.0  # for the gateway to see the new variant ready
    poll_s: float = 0.25


class Rollout:
    def __init__(
        self,
        *,
        admin: AdminClient,
        registry: Registry,
        store: RolloutStore,
        timing: Timing = Timing(),
        say: Callable[[str], None] = print,
    ) -> None:
        self.admin = admin
        self.registry = registry
        self.store = store
        self.timing = timing
        self.say = say
        self._canary_base = 0.0  # the canary's request count when the analysis started

    # -- begin: up to a running analysis --------------------------------------------------------
    def begin(self, route: str, candidate: Candidate) -> RolloutState:
        """Register, warm up, enter the route at weight 0, start the analysis. A refusal up to
        there leaves the route as it was (``RolloutRefused`` after recording it)."""
        with self.store.locked(route):
            self._refuse_if_busy(route)
            before = self._route(route)
            canary = self._check_route(route, before)
            try:
                served = served_as(self.registry.instance.store / candidate.archive)
            except ValueError as exc:
                raise RolloutRefused(str(exc)) from None
            stable = before["variants"][0]
            if (stable["model"], stable["version"]) == (served.model, served.version):
                raise RolloutRefused(f"{route}'s stable variant serves {served.path} already")
            state = self.store.put(
                RolloutState(
                    route=route,
                    model=candidate.model,
                    version=candidate.version,
                    format=candidate.format,
                    archive=candidate.archive,
                    canary=canary,
                    before=before,
                    served_model=served.model,
                    served_version=served.version,
                )
            )
        state = self._put(
            state.moved(
                "registering", f"rollout of {candidate.archive} ({served.path}) into {route}"
            )
        )
        try:
            staged = self.registry.register(candidate.archive)
        except RegistryError as exc:
            self._put(state.moved("refused", f"refused: {exc}", reason=str(exc)))
            raise RolloutRefused(str(exc)) from None
        state = self._put(state.moved("warming", f"registered {served.path}; warming up"))
        try:
            key = KeyFile.read(self.registry.instance.key_file).inference.key
            slowest = warm_up(self.registry.instance.inference_url, key, served, staged.manifest)
        except (WarmUpFailed, OSError, ValueError) as exc:
            self.registry.unregister(served, candidate.archive)
            self._put(state.moved("refused", f"refused, unloaded: {exc}", reason=str(exc)))
            raise RolloutRefused(f"{served.path} failed its warm-up: {exc}") from None
        state = self._put(
            state.moved("entering", f"warmed up (3 requests, slowest {slowest * 1000:.0f} ms)")
        )
        return self._enter(state, served)

    def _enter(self, state: RolloutState, served: ServedAs) -> RolloutState:
        route, canary = state.route, state.canary
        slot = _variant(state.before, canary)
        try:
            self._abort_if_asked(state)
            if slot["weight"] > 0:  # the variant leaves rotation before it changes model
                self.admin.set_weights(route, _weights(state.before, canary, 0))
            self.admin.set_variant(
                route,
                canary,
                {"model": served.model, "version": served.version},
                reason=f"{ACTOR_REASON}: {state.model} {state.version} ({state.format})",
            )
            state = self._put(
                state.moved("waiting_ready", f"{route}/{canary} serves {served.path} at weight 0")
            )
            state = self._wait_ready(state)
            self._abort_if_asked(state)
            self._canary_base = self._canary_requests(state)
            self.admin.canary(route, "start")
        except (AdminClientError, _Aborted) as exc:
            state = self._undo(state, "refused", f"refused before any traffic moved: {exc}")
            raise RolloutRefused(state.reason) from None
        return self._put(state.moved("analysing", f"canary analysis of {route} started"))

    # -- follow: until promoted and retired, or rolled back and restored ------------------------
    def follow(self, state: RolloutState) -> RolloutState:
        route = state.route
        started = self.admin.canary(route).get("started_at", "")
        base = self._canary_base
        while True:
            status = self.admin.canary(route)
            if state.first_canary_request_s is None and self._canary_requests(state) > base:
                state = self._put(
                    state.moved(
                        "analysing",
                        "first canary request answered",
                        first_canary_request_s=state.elapsed(),
                    )
                )
                self.say(f"[+{state.elapsed():.1f}s] first request served by {state.canary}")
            last = status.get("last_run") or {}
            if status.get("phase") == "idle" and last.get("started_at") == started:
                break
            if status.get("phase") != "analysing" and status.get("phase") != "paused":
                break  # ended in a way we did not start: judged below from last_run
            time.sleep(self.timing.poll_s)
        outcome = last.get("outcome", "")
        if outcome == "promoted":
            return self._retire(state, last.get("reason", ""))
        phase: Phase = "aborted" if outcome == "aborted" else "rolled_back"
        return self._undo(state, phase, f"{outcome.replace('_', ' ')}: {last.get('reason', '')}")

    def _retire(self, state: RolloutState, reason: str) -> RolloutState:
        """After the grace period, unload what the promotion left unrouted."""
        olds = _olds(state)
        state = self._put(
            state.moved(
                "retiring",
                f"promoted ({reason}); {', '.join(o.path for o in olds) or 'nothing'} "
                f"to unload in {self.timing.grace_s:g} s",
            )
        )
        time.sleep(self.timing.grace_s)
        return self._unload_olds(state)

    def _unload_olds(self, state: RolloutState) -> RolloutState:
        retired, kept = [], []
        olds = _olds(state)
        for old in olds:
            if self._still_routed(old):
                state = self._put(state.moved("retiring", f"{old.path} is still routed: kept"))
                continue
            try:
                self.registry.unregister(old, archive_file_name(old.model, old.version))
            except RegistryError as exc:  # promoted all the same: say what is still loaded
                kept.append(old.path)
                state = self._put(state.moved("retiring", f"{old.path} NOT unloaded: {exc}"))
                continue
            retired.append(old.path)
        what = f"retired {', '.join(retired)} (unloaded)" if retired else "nothing unloaded"
        if kept:
            what += f"; still loaded: {', '.join(kept)} (unload it by hand)"
        return self._put(state.moved("promoted", what, retired=", ".join(retired)))

    # -- abort and undo -------------------------------------------------------------------------
    def abort(self, route: str, wait_s: float = 120.0) -> RolloutState | None:
        """Stop ``route``'s rollout: end its analysis (the canary goes back to 0%) or stop it
        before traffic moves; the rollout command (or, when it is gone, this one) restores the
        route and unloads the new version."""
        with self.store.locked(route):
            state = self.store.get(route)
            if state is None or state.final:
                return state
            if state.phase == "retiring" and not alive(state.pid):
                pass  # promoted already: finish the retirement below, never undo it
            elif state.phase == "analysing":
                try:
                    self.admin.canary(route, "abort")
                except AdminClientError as exc:
                    log.warning("the analysis of %s: %s", route, exc)
            else:
                state = self.store.put(state.model_copy(update={"abort_requested": True}))
        if alive(state.pid):
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                current = self.store.get(route)
                if current is not None and current.final:
                    return current
                time.sleep(self.timing.poll_s)
        if state.phase == "retiring":
            return self._unload_olds(
                state.moved("retiring", "the rollout command was gone: retired here")
            )
        phase: Phase = "aborted"
        return self._undo(state, phase, "aborted (the rollout command was gone: undone here)")

    def _undo(self, state: RolloutState, phase: Phase, reason: str) -> RolloutState:
        """Put the route back as ``state.before`` and unload the new version."""
        state = self._put(state.moved("restoring", reason, reason=reason))
        restored = self._restore(state)
        served = ServedAs(state.served_model, state.served_version)
        unloaded, left = "", ""
        if state.served_model and not self._still_routed(served):
            try:
                self.registry.unregister(served, state.archive)
                unloaded = served.path
            except RegistryError as exc:
                left = f"; {served.path} NOT unloaded ({exc})"
        what = f"{reason}; route {'restored exactly' if restored else 'NOT as before'}" + (
            f"; unloaded {unloaded}" if unloaded else left
        )
        return self._put(state.moved(phase, what, route_restored=restored, retired=unloaded))

    def _restore(self, state: RolloutState) -> bool:
        route, canary = state.route, state.canary
        before = _variant(state.before, canary)
        try:
            now = _variant(self._route(route), canary)
            target = {k: before[k] for k in ("backend", "model", "version")}
            if {k: now[k] for k in target} != target:
                self.admin.set_variant(route, canary, target, reason=f"{ACTOR_REASON}: restore")
            weights = {v["name"]: v["weight"] for v in state.before["variants"]}
            current = self._route(route)
            if {v["name"]: v["weight"] for v in current["variants"]} != weights:
                self.admin.set_weights(route, weights)
            return bool(self._route(route) == state.before)
        except AdminClientError as exc:
            log.error("could not restore %s: %s", route, exc)
            return False

    # -- helpers --------------------------------------------------------------------------------
    def _put(self, state: RolloutState) -> RolloutState:
        """Persist ``state``, keeping an abort asked for meanwhile (from another process)."""
        with self.store.locked(state.route):
            current = self.store.get(state.route)
            if current is not None and current.abort_requested:
                state = state.model_copy(update={"abort_requested": True})
            self.store.put(state)
        if state.events:
            self.say(f"[+{state.events[-1].at_s:.1f}s] {state.events[-1].what}")
        return state

    def _route(self, route: str) -> dict[str, Any]:
        body: dict[str, Any] = self.admin.route(route)["route"]
        return body

    def _refuse_if_busy(self, route: str) -> None:
        current = self.store.get(route)
        if current is None or current.final:
            return
        if alive(current.pid):
            raise RolloutRefused(
                f"a rollout of {route} is {current.phase} (pid {current.pid}): "
                f"`servegate rollout status {route}`, or `abort {route}`"
            )
        raise RolloutRefused(
            f"an earlier rollout of {route} was interrupted while {current.phase}: "
            f"`servegate rollout abort {route}` puts the route back and unloads it"
        )

    def _check_route(self, route: str, body: dict[str, Any]) -> str:
        analysis = body.get("analysis")
        if not analysis:
            raise RolloutRefused(
                f"route {route} has no `analysis` block: a rollout runs the route's canary "
                "analysis (docs/canary.md)"
            )
        canary = str(analysis["canary"])
        status = self.admin.canary(route)
        if status.get("phase") != "idle":
            raise RolloutRefused(f"a canary analysis run of {route} is {status.get('phase')}")
        shadow = body.get("shadow") or {}
        if (analysis.get("checks") or {}).get("divergence") and shadow.get("variant") != canary:
            raise RolloutRefused(
                f"{route}'s analysis checks divergence but no shadow copies traffic to "
                f"{canary} (a promotion removes it): add `shadow: {{variant: {canary}, "
                "percent: 10, compare: cosine}` to the route"
            )
        return canary

    def _wait_ready(self, state: RolloutState) -> RolloutState:
        deadline = time.monotonic() + self.timing.ready_timeout_s
        while True:
            readiness = self.admin.routes().get("readiness", {}).get(state.route, {})
            if readiness.get(state.canary, {}).get("ready") is True:
                return self._put(state.moved("waiting_ready", "the gateway sees it ready"))
            if time.monotonic() > deadline:
                raise _Aborted(
                    f"the gateway did not see {state.route}/{state.canary} ready in "
                    f"{self.timing.ready_timeout_s:g} s ({readiness.get(state.canary)})"
                )
            time.sleep(self.timing.poll_s)

    def _abort_if_asked(self, state: RolloutState) -> None:
        current = self.store.get(state.route)
        if current is not None and current.abort_requested:
            raise _Aborted("aborted by `servegate rollout abort`")

    def _still_routed(self, served: ServedAs) -> bool:
        routes = self.admin.routes()["routes"]
        return any(
            (v["model"], v["version"]) == (served.model, served.version)
            for r in routes.values()
            for v in r["variants"]
        )

    def _canary_requests(self, state: RolloutState) -> float:
        """Requests the gateway has answered from the canary variant (its /metrics)."""
        try:
            text = httpx.get(f"{self.admin.url}/metrics", timeout=5).text
        except httpx.HTTPError:
            return 0.0
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "servegate_requests_total"
            and s.labels.get("route") == state.route
            and s.labels.get("variant") == state.canary
        )


class _Aborted(Exception):
    pass


def _olds(state: RolloutState) -> list[ServedAs]:
    """What a promotion leaves unrouted: the stable's previous version, and what the canary
    variant served before the rollout (unless either is the new version)."""
    new = ServedAs(state.served_model, state.served_version)
    olds: list[ServedAs] = []
    for v in (state.before["variants"][0], _variant(state.before, state.canary)):
        old = ServedAs(v["model"], v["version"])
        if old != new and old not in olds:
            olds.append(old)
    return olds


def _variant(route: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(v for v in route["variants"] if v["name"] == name)
    return found


def _weights(route: dict[str, Any], canary: str, weight: int) -> dict[str, int]:
    """The route's weights with ``canary`` at ``weight``, the difference to the stable."""
    weights = {v["name"]: int(v["weight"]) for v in route["variants"]}
    stable = route["variants"][0]["name"]
    weights[stable] += weights[canary] - weight
    weights[canary] = weight
    return weights
