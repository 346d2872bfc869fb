"""Each route's rollout, persisted as ``.servegate/rollouts/<route>.json`` so that
``servegate rollout status`` and ``abort`` (from another shell) see where it is, and a rollout
whose command was interrupted can be cleaned up. One writer at a time (``locked``)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Phase = Literal[
    "registering",  # checking, copying and loading the archive into TorchServe
    "warming",  # warm-up requests straight to TorchServe
    "entering",  # the canary variant takes the new version at weight 0 (admin API)
    "waiting_ready",  # until the gateway sees the variant ready
    "analysing",  # the route's canary analysis moves traffic
    "retiring",  # promoted: the previous version is unloaded after the grace period
    "restoring",  # rolled back or aborted: the route is put back, the new version unloaded
    "promoted",
    "rolled_back",
    "aborted",
    "refused",  # nothing moved: the archive, its warm-up or the route was refused
    "failed",  # a step failed after traffic could have moved; the reason says what is left
]
FINAL: frozenset[str] = frozenset({"promoted", "rolled_back", "aborted", "refused", "failed"})


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    at_s: float  # seconds since the rollout started
    what: str


class RolloutState(BaseModel):
    model_config = ConfigDict(frozen=True)

    route: str
    model: str
    version: str
    format: str = ""
    archive: str = ""
    served_model: str = ""  # TorchServe's model name and version
    served_version: str = ""
    canary: str = ""  # the route's canary variant (its analysis' canary)
    before: dict[str, Any] = Field(default_factory=dict)  # the route before (admin API JSON)
    phase: Phase = "registering"
    reason: str = ""
    pid: int = Field(default_factory=os.getpid)
    started_at: str = Field(default_factory=now_iso)
    started_mono: float = Field(default_factory=time.time)
    events: tuple[Event, ...] = ()
    first_canary_request_s: float | None = None
    retired: str = ""  # the TorchServe model/version unloaded at the end
    route_restored: bool | None = None
    abort_requested: bool = False

    @property
    def final(self) -> bool:
        return self.phase in FINAL

    def elapsed(self) -> float:
        return round(time.time() - self.started_mono, 3)

    def moved(self, phase: Phase, what: str, **fields: Any) -> RolloutState:
        """This state in ``phase``, with ``what`` appended to its events."""
        event = Event(at_s=self.elapsed(), what=what)
        return self.model_copy(update={"phase": phase, "events": (*self.events, event), **fields})


class RolloutStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, route: str) -> Path:
        return self.directory / f"{route}.json"

    def get(self, route: str) -> RolloutState | None:
        try:
            return RolloutState.model_validate_json(self.path(route).read_text())
        except FileNotFoundError:
            return None

    def all(self) -> list[RolloutState]:
        if not self.directory.is_dir():
            return []
        return [s for p in sorted(self.directory.glob("*.json")) if (s := self.get(p.stem))]

    def put(self, state: RolloutState) -> RolloutState:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.path(state.route)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(state.model_dump_json(indent=2) + "\n")
        os.replace(partial, path)
        return state

    @contextmanager
    def locked(self, route: str) -> Iterator[None]:
        """Exclusive use of ``route``'s rollout (the command and an ``abort`` from elsewhere)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / f".{route}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
