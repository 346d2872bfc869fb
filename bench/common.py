"""Helpers shared by the benchmarks: free ports, a temporary TorchServe, percentiles."""

from __future__ import annotations

import socket
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from servegate.torchserve.process import TorchServe
from servegate.torchserve.settings import Ports, TorchServeSettings


def free_ports() -> Ports:
    names = list(Ports.model_fields)
    socks = [socket.socket() for _ in names]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = {n: s.getsockname()[1] for n, s in zip(names, socks, strict=True)}
    for s in socks:
        s.close()
    return Ports(**ports)


@contextmanager
def torchserve(store: Path, workdir: Path, models: tuple[str, ...] = ()) -> Iterator[TorchServe]:
    server = TorchServe(
        TorchServeSettings(store=store, workdir=workdir, models=models, ports=free_ports())
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
