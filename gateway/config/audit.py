"""Append-only audit log of config changes (operators and the canary analysis), one JSON
object per line (fsynced)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class AuditEntry:
    who: str
    client: str
    action: str
    route: str
    old: dict[str, int]
    new: dict[str, int]
    version_before: str
    version_after: str
    reason: str = ""
    time: str = ""


def append(path: Path, entry: AuditEntry) -> None:
    record = asdict(entry)
    record["time"] = record["time"] or datetime.now(UTC).isoformat(timespec="milliseconds")
    line = json.dumps(record, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> list[dict[str, object]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
