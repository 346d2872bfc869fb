"""Timed steps: each one logged as it starts and ends, and a summary table at the end."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

log = logging.getLogger("servegate.e2e")


@dataclass
class Step:
    name: str
    seconds: float = 0.0
    status: str = "running"  # ok, FAILED, skipped
    notes: list[str] = field(default_factory=list)


class StepFailed(AssertionError):
    """A check of the stack did not hold; the message says what was seen."""


@dataclass
class Steps:
    done: list[Step] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        current = Step(name)
        self.done.append(current)
        log.info("== %s", name)
        start = time.monotonic()
        try:
            yield current
        except BaseException:
            current.status = "FAILED"
            raise
        else:
            if current.status == "running":
                current.status = "ok"
        finally:
            current.seconds = time.monotonic() - start
            log.info("== %s: %s in %.1f s", name, current.status, current.seconds)

    def skip(self, name: str, why: str) -> None:
        self.done.append(Step(name, status="skipped", notes=[why]))
        log.info("== %s: skipped (%s)", name, why)

    def summary(self) -> str:
        width = max(len(s.name) for s in self.done) if self.done else 10
        lines = [f"{'step':<{width}}  {'status':<7}  {'seconds':>8}"]
        for s in self.done:
            lines.append(f"{s.name:<{width}}  {s.status:<7}  {s.seconds:>8.1f}")
            lines.extend(f"{'':<{width}}    - {note}" for note in s.notes)
        total = sum(s.seconds for s in self.done)
        lines.append(f"{'total':<{width}}  {'':<7}  {total:>8.1f}")
        return "\n".join(lines)
