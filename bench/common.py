"""Helpers shared by the benchmarks: free ports, a temporary TorchServe, percentiles."""

from __future__ import annotations

import statistics
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
