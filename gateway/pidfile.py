"""The pid file names the gateway that serves: written by a gateway once it serves (before it
tells a predecessor to drain), given up by a gateway as soon as it starts draining, so that
``servegate gateway start`` during a drain does not find it "already running". Each gateway only
ever removes a file that still names itself: a successor's is never touched."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def read(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def claim(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, path)


def release(path: Path) -> None:
    if read(path) == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
