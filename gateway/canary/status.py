"""The analysis status of each route, persisted so that a restart resumes where it stopped.

Kept beside ``gateway.yaml`` (``<config>.canary.json``, written atomically) like a Kubernetes
object's ``status`` beside its ``spec``: the config says what ops want, this file says where the
analysis is. Weights themselves are in ``gateway.yaml``, written by each decision.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.admin.persist import atomic_write

log = logging.getLogger(__name__)
Phase = Literal["idle", "analysing", "paused", "promoted", "rolled_back"]
ACTIVE: tuple[Phase, ...] = ("analysing", "paused")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # error_rate, latency_p99_ms, latency_p99_ratio, divergence, requests
    value: float | None
    bound: str  # e.g. "<= 0.01"
    passed: bool | None  # None: not judged (no data, skipped)
    detail: str = ""


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
