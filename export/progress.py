"""Progress for long steps: a log line at the start, a heartbeat while running, the time taken."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("servegate.export")


@contextmanager
def step(label: str, heartbeat_s: float = 15.0) -> Iterator[None]:
    started = time.perf_counter()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(heartbeat_s):
            log.info("  ... still %s (%.0f s)", label, time.perf_counter() - started)

    log.info("%s ...", label)
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    log.info("%s: done in %.1f s", label, time.perf_counter() - started)
