"""Helpers shared by the benchmarks: free ports, a temporary TorchServe, percentiles."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import yaml

from servegate.torchserve.process import TorchServe
from servegate.torchserve.settings import Ports, TorchServeSettings

if TYPE_CHECKING:
    from export.report import ExportReport
    from handlers.manifest import Format, Precision


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


def one_variant_config(ts: TorchServe, path: Path) -> Path:
    """A gateway config at ``path``: route ``mlp`` -> variant ``stable`` (``mlp_torchscript``
    on ``ts``, its key file read as the gateway reads it)."""
    s = ts.settings
    backend = {"inference_url": s.url("inference"), "key_file": str(s.key_file)}
    stable = {"name": "stable", "backend": "ts", "model": "mlp_torchscript", "weight": 100}
    routes = {"mlp": {"variants": [stable]}}
    path.write_text(yaml.safe_dump({"backends": {"ts": backend}, "routes": routes}))
    return path


def emit(result: dict[str, object], out: Path | None) -> None:
    """Print a benchmark's result; append it to ``out`` (a JSON line) when given."""
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    if out is not None:
        with out.open("a") as fh:
            fh.write(json.dumps(result) + "\n")


def pct(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def spawn_gateway(
    config: Path,
    port: int,
    admin_port: int,
    grpc_port: int,
    log_file: Path,
    *,
    workers: int = 1,
) -> subprocess.Popen[bytes]:
    """``servegate gateway run`` in its own process (admin API off: no token file), with
    ``workers`` data-plane processes."""
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
        "--workers",
        str(workers),
    ]
    return subprocess.Popen(argv, stdout=log_file.open("wb"), stderr=subprocess.STDOUT)


def gateway_processes(proc: subprocess.Popen[bytes], workers: int) -> list[psutil.Process]:
    """The gateway's primary and its worker processes, once every worker is up."""
    primary = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    while True:
        found = [c for c in primary.children() if "spawn_main" in " ".join(c.cmdline())]
        if len(found) >= workers - 1:
            time.sleep(1.0)  # their listeners bind right after the interpreter starts
            return [primary, *found]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(found) + 1} of {workers} gateway processes started")
        time.sleep(0.2)


def quick_export(
    model: str,
    out: Path,
    formats: tuple[Format, ...],
    *,
    device: str = "cpu",
    serving: Mapping[str, int] | None = None,
    precision: Precision = "fp32",
) -> ExportReport:
    """Export through the real pipeline (parity still checked) with each format timed once:
    the benchmark does its own timing. ``serving`` overrides ``model-config.yaml`` fields."""
    # Imported here: load generator processes import this module and need no torch.
    from export.pipeline import ExportRequest, run_export
    from export.timing import TimingPlan

    return run_export(
        ExportRequest(
            model=model,
            out=out,
            formats=formats,
            device=device,
            timing=TimingPlan(warmup=1, min_runs=1, max_runs=1, budget_s=0.0),
            serving_overrides=serving or {},
            precision=precision,
        )
    )
