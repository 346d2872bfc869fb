"""The compose stack: the repository's docker-compose.yml, driven by ``docker-compose`` (v1.29,
Debian's) or ``docker compose`` (v2), with every host port, image and secret from the
environment, as a user would set them."""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.e2e.steps import StepFailed

log = logging.getLogger("servegate.e2e.stack")


def free_port() -> int:
    """A port nothing listens on now, on loopback (CI holds 8000-9100 at times)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Ports:
    http: int
    grpc: int
    admin: int
    prometheus: int
    grafana: int

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())

    def env(self) -> dict[str, str]:
        return {
            "SERVEGATE_HTTP_PORT": str(self.http),
            "SERVEGATE_GRPC_PORT": str(self.grpc),
            "SERVEGATE_ADMIN_PORT": str(self.admin),
            "PROMETHEUS_PORT": str(self.prometheus),
            "GRAFANA_PORT": str(self.grafana),
        }


def compose_command() -> list[str]:
    found = shutil.which("docker-compose")
    return [found] if found else ["docker", "compose"]


class Stack:
    def __init__(self, root: Path, project: str, env: Mapping[str, str]) -> None:
        self.root = root
        self.project = project
        self.env = {**os.environ, **env}
        self.base = [*compose_command(), "-p", project, "-f", str(root / "docker-compose.yml")]

    def compose(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        proc = subprocess.run(
            [*self.base, *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise StepFailed(f"compose {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc.stdout

    def up(self, services: Sequence[str], timeout: float = 900) -> None:
        self.compose("up", "-d", "--no-build", *services, timeout=timeout)

    def recreate(self, service: str, env: Mapping[str, str], timeout: float = 300) -> None:
        """``up -d`` one service again with changed variables: compose recreates it."""
        self.env.update(env)
        self.compose("up", "-d", "--no-build", service, timeout=timeout)

    def container(self, service: str) -> str:
        cid = self.compose("ps", "-q", service).strip()
        if not cid:
            raise StepFailed(f"no container for service {service}")
        return cid

    def inspect(self, service: str, fmt: str) -> str:
        argv = ["docker", "inspect", "-f", fmt, self.container(service)]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()

    def health(self, service: str) -> str:
        return self.inspect(service, "{{if .State.Health}}{{.State.Health.Status}}{{end}}")

    def started_to_healthy(self, service: str) -> float | None:
        """Seconds from the container's start to its first passing healthcheck (Docker keeps
        the last five checks: None when the first pass is no longer among them)."""
        state = json.loads(self.inspect(service, "{{json .State}}"))
        started = _when(state["StartedAt"])
        passes = [_when(c["End"]) for c in state["Health"]["Log"] if c["ExitCode"] == 0]
        fails_before = [c for c in state["Health"]["Log"] if c["ExitCode"] != 0]
        if not passes or (len(state["Health"]["Log"]) >= 5 and not fails_before):
            return None
        return (min(passes) - started).total_seconds()

    def wait_healthy(self, services: Sequence[str], timeout_s: float) -> dict[str, float]:
        """Seconds from now until each service reported healthy."""
        start = time.monotonic()
        seen: dict[str, float] = {}
        while len(seen) < len(services):
            for svc in services:
                if svc not in seen and self.health(svc) == "healthy":
                    seen[svc] = time.monotonic() - start
                    log.info("%s healthy after %.1f s", svc, seen[svc])
            if time.monotonic() - start > timeout_s:
                states = {s: self.health(s) for s in services}
                raise StepFailed(f"not healthy within {timeout_s:.0f} s: {states}")
            time.sleep(1)
        return seen

    def save_logs(self, path: Path) -> None:
        path.write_text(self.compose("logs", "--no-color", "--timestamps", check=False))
        log.info("compose logs: %s", path)

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300, check=False)


def _when(stamp: str) -> datetime.datetime:
    """Docker's RFC 3339 time with nanoseconds, to the microsecond Python keeps."""
    trimmed = re.sub(r"(\.\d{6})\d*", r"\1", stamp).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(trimmed)
