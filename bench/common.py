"""Helpers shared by the benchmarks: free ports, a temporary TorchServe, percentiles."""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from servegate.torchserve.process import TorchServe
from servegate.torchserve.settings import Ports, TorchServeSettings


@contextmanager
def torchserve(store: Path, workdir: Path, models: tuple[str, ...] = ()) -> Iterator[TorchServe]:
    server = TorchServe(
        TorchServeSettings(store=store, workdir=workdir, models=models, ports=Ports.ephemeral())
    )
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def pct(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def spawn_gateway(
    config: Path, port: int, admin_port: int, grpc_port: int, log_file: Path
) -> subprocess.Popen[bytes]:
    """``servegate gateway run`` in its own process (admin API off: no token file)."""
    argv = [
        sys.executable,
        "-m",
        "servegate.cli",
        "gateway",
        "run",
        "--config",
        str(config),
        "--port",
        str(port),
        "--admin-port",
        str(admin_port),
        "--grpc-port",
        str(grpc_port),
        "--token-file",
        str(config.with_name("no-token")),
    ]
    return subprocess.Popen(argv, stdout=log_file.open("wb"), stderr=subprocess.STDOUT)
