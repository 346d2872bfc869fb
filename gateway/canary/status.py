"""The analysis status of each route, persisted so that a restart resumes where it stopped.

Kept beside ``gateway.yaml`` (``<config>.canary.json``, written atomically) like a Kubernetes
object's ``status`` beside its ``spec``: the config says what ops want, this file says where the
analysis is. Weights themselves are in ``gateway.yaml``, written by each decision.

The lifecycle follows Flagger and Argo Rollouts: the current phase is ``idle`` or a run
(``analysing``, ``paused``). A run ends promoted, rolled back or aborted, and then the route is
``idle`` again with that ending kept as history in ``last_run``: an outcome is never a phase
that lingers (a rollback an hour ago is not a state the route is "in" today). A status file
written before this lifecycle (phase ``promoted`` or ``rolled_back``) loads as ``idle`` with
that outcome as its last run.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.config.atomic import atomic_write

log = logging.getLogger(__name__)
Phase = Literal["idle", "analysing", "paused"]
PHASES: tuple[Phase, ...] = ("idle", "analysing", "paused")
ACTIVE: tuple[Phase, ...] = ("analysing", "paused")
Outcome = Literal["promoted", "rolled_back", "aborted"]
OUTCOMES: tuple[Outcome, ...] = ("promoted", "rolled_back", "aborted")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # error_rate, latency_p99_ms, latency_p99_ratio, divergence, requests
    value: float | None
    bound: str  # e.g. "<= 0.01"
    passed: bool | None  # None: not judged (no data, skipped)
    detail: str = ""


class RunResult(BaseModel):
    """How a finished run ended: history, shown beside the current phase."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    canary: str = ""
    step: int = 0  # the step it ended at
    weight: int = 0  # the canary's weight at that step, before the ending moved it
    failed_checks: int = 0
    reason: str = ""
    last_checks: tuple[CheckResult, ...] = ()
    started_at: str = ""
    finished_at: str = Field(default_factory=now_iso)


class RouteStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    phase: Phase = "idle"
    canary: str = ""
    step: int = 0  # index into the analysis steps
    weight: int = 0  # the canary's weight at that step
    failed_checks: int = 0
    reason: str = ""
    last_checks: tuple[CheckResult, ...] = ()
    last_decision: str = ""
    started_at: str = ""
    updated_at: str = Field(default_factory=now_iso)
    last_run: RunResult | None = None

    @model_validator(mode="before")
    @classmethod
    def _finished_phase_is_history(cls, data: Any) -> Any:
        """A status file from before this lifecycle: its outcome phase becomes the last run."""
        if isinstance(data, dict) and data.get("phase") in ("promoted", "rolled_back"):
            keep = ("canary", "step", "weight", "failed_checks", "reason", "last_checks")
            run = {k: data[k] for k in keep if k in data}
            finished = data.get("updated_at") or now_iso()
            run.update(outcome=data["phase"], started_at=data.get("started_at", ""))
            return {
                "phase": "idle",
                "last_decision": data.get("last_decision", ""),
                "updated_at": finished,
                "last_run": {**run, "finished_at": finished},
            }
        return data


class StatusStore:
    """Route statuses in one JSON file; an unreadable file starts every route at ``idle`` and
    says so loudly (it never invents a step)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.routes: dict[str, RouteStatus] = self._load()

    def get(self, route: str) -> RouteStatus:
        return self.routes.get(route, RouteStatus())

    def put(self, route: str, status: RouteStatus) -> None:
        """Persist first, then adopt: a failed write leaves the old status in force."""
        routes = {**self.routes, route: status}
        body = {name: s.model_dump(mode="json") for name, s in routes.items()}
        atomic_write(self.path, (json.dumps(body, indent=2, sort_keys=True) + "\n").encode())
        self.routes = routes

    def _load(self) -> dict[str, RouteStatus]:
        if not self.path.is_file():
            return {}
        try:
            raw = json.loads(self.path.read_bytes())
            return {name: RouteStatus.model_validate(s) for name, s in raw.items()}
        except (OSError, ValueError, ValidationError, AttributeError) as exc:
            log.error("cannot read canary status %s (%s): every route starts idle", self.path, exc)
            return {}
