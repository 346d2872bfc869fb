"""The served stack of ``bench.gpu_targets``: one model store, one TorchServe, one gateway.

The store holds the no-op model (TorchServe's own ceiling, ``bench.ts_ceiling``) and each
model exported on this machine in the chosen format and precision (``compile`` bf16 on the GPU:
its Inductor cache is specific to the device, so it is exported here, in the same run). When
that export fails, the model is exported as ``fallback`` (TorchScript fp32) instead and its
rows say so. The gateway serves every model under its own name and, for the coalescing rows,
under ``NAME_coalesced`` with the route field ``coalesce``; a gateway that refuses that field
(a build without coalescing) is started again without those routes, and their rows carry its
message.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import yaml

from bench.common import quick_export, spawn_gateway
from servegate.ports import free_ports
from servegate.torchserve.process import ServeError, TorchServe
from servegate.torchserve.settings import Ports, TorchServeSettings

log = logging.getLogger("bench")
NOOP = "noop"
COALESCED = "_coalesced"


@dataclass
class Served:
    """One model as TorchServe serves it: its archive name and how it was exported."""

    model: str
    archive: str | None = None  # the TorchServe model name; None: no archive
    format: str = ""
    precision: str = ""
    export: dict[str, Any] = field(default_factory=dict)  # timings, parity, errors


def build_store(store: Path, args: argparse.Namespace) -> dict[str, Served]:
    """The no-op archive and every model of ``args.models`` in ``store``."""
    from bench.ts_ceiling import archive

    noop = SimpleNamespace(
        workers=args.ceiling_workers, batch_size=args.ceiling_batch, delay_ms=args.delay_ms
    )
    archive(store, noop)  # type: ignore[arg-type]
    served = {NOOP: Served(NOOP, NOOP, "noop", "-")}
    serving = {
        "batch_size": args.batch_size,
        "max_batch_delay_ms": args.delay_ms,
        "min_workers": args.gpu_workers,
        "max_workers": args.gpu_workers,
    }
    for model in args.models:
        served[model] = export_one(model, store, args, serving)
    return served


def export_one(
    model: str, store: Path, args: argparse.Namespace, serving: dict[str, int]
) -> Served:
    """``model`` exported as ``args.format``, else as ``args.fallback`` (fp32), each in a
    process of its own: a native crash (seen on the CPU machine: "double free or corruption" in
    MiniLM's compile bf16 parity check, in 2 of 5 tries) loses that attempt only, and it is
    tried once more from a clean directory; this process never holds the export's GPU memory
    or compiled graphs."""
    attempts = [(args.format, args.precision)]
    if args.fallback and args.fallback != args.format:
        attempts.append((args.fallback, "fp32"))
    served = Served(model)
    retried = False
    while attempts:
        fmt, precision = attempts.pop(0)
        started = time.perf_counter()
        job = ExportJob(model, str(store), fmt, precision, args.device, serving, args.stages)
        outcome = export_in_child(job, store.parent / f"export-{model}-{fmt}.json", args)
        outcome["export_s"] = round(time.perf_counter() - started, 1)
        key = f"{fmt}_{precision}" + ("_retry" if retried and fmt == args.format else "")
        served.export[key] = outcome
        if outcome.pop("crashed", False) and not retried:  # intermittent here: once more
            retried = True
            attempts.insert(0, (fmt, precision))
            shutil.rmtree(store / model / fmt, ignore_errors=True)  # its Inductor caches too
            log.error("[%s] the %s %s export crashed; trying it once more", model, fmt, precision)
            continue
        if outcome.get("error") is None:
            served.archive, served.format, served.precision = f"{model}_{fmt}", fmt, precision
            log.info("[%s] exported as %s %s in %.1f s", model, fmt, precision, outcome["export_s"])
            return served
        log.error("[%s] no %s %s archive: %s", model, fmt, precision, outcome["error"][-500:])
    return served


@dataclass(frozen=True)
class ExportJob:
    model: str
    store: str
    fmt: str
    precision: str
    device: str
    serving: dict[str, int]
    stages: bool = False  # also time the handler's stages on the archive (bench.handler_stages)


def export_in_child(job: ExportJob, result: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``_export`` in a spawned process; what it reported, or why it reported nothing."""
    result.unlink(missing_ok=True)
    child = multiprocessing.get_context("spawn").Process(target=_export, args=(job, str(result)))
    child.start()
    try:
        child.join(args.export_timeout_s)
    finally:
        if child.is_alive():  # past the timeout, or this process is being stopped
            child.kill()
            child.join()
    if result.is_file():
        outcome: dict[str, Any] = json.loads(result.read_text())
        return outcome
    code = child.exitcode
    how = (
        f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit {code}"
    )
    error = f"the export's process ended without a result ({how}; its log is above)"
    return {"error": error, "crashed": code is not None and code < 0}


def _export(job: ExportJob, result: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    outcome: dict[str, Any]
    try:
        report = quick_export(
            job.model,
            Path(job.store),
            (job.fmt,),  # type: ignore[arg-type]
            device=job.device,
            serving=job.serving,
            precision=job.precision,  # type: ignore[arg-type]
        )
        entry = report.formats[job.fmt]  # type: ignore[index]
        fields = {"max_abs_err", "min_cosine", "compile_cold_s", "compile_warm_s", "error"}
        outcome = entry.model_dump(include=fields)
        if outcome["error"] is not None:
            outcome["error"] = str(outcome["error"])[-2000:]
        elif job.stages:
            outcome["handler_stages_ms"] = _stages(job)
    except Exception as exc:  # a failed export is this model's result, not the run's end
        log.exception("[%s] export as %s %s failed", job.model, job.fmt, job.precision)
        outcome = {"error": f"{type(exc).__name__}: {exc}"[-2000:]}
    Path(result).write_text(json.dumps(outcome))


def _stages(job: ExportJob) -> dict[str, Any]:
    """The handler's preprocess / inference / postprocess ms per batch of one-item requests,
    in this process, as one worker runs them (where a served request's worker time goes)."""
    from bench.gpu_served import request_body
    from bench.handler_stages import stage_times

    mar = next(Path(job.store).rglob(f"{job.model}_{job.fmt}.mar"))
    times = stage_times(mar, request_body(job.model), (1, 8, 32), job.device)
    log.info("[%s] handler stages (ms per batch): %s", job.model, times)
    return times


def gateway_config(
    ts: TorchServeSettings, served: dict[str, Served], coalesce: dict[str, float] | None
) -> dict[str, Any]:
    backend = {"inference_url": ts.url("inference"), "key_file": str(ts.key_file)}
    routes: dict[str, Any] = {}
    for name, one in served.items():
        if one.archive is None:
            continue
        variant = {"name": "stable", "backend": "ts", "model": one.archive, "weight": 100}
        routes[name] = {"variants": [variant], "timeout_s": 60}
        if coalesce is not None and name != NOOP:
            routes[name + COALESCED] = {**routes[name], "coalesce": coalesce}
    return {"backends": {"ts": backend}, "routes": routes}


class GatewayRefused(RuntimeError):
    """The gateway exited at start; the message is the end of its log."""


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    port: int
    log_file: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_gateway(config: dict[str, Any], work: Path, workers: int, name: str) -> Gateway:
    """``servegate gateway run`` with ``workers`` processes, once it answers /ping."""
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    port, admin, grpc_port = free_ports(3)
    log_file = work / f"{name}.log"
    proc = spawn_gateway(path, port, admin, grpc_port, log_file, workers=workers)
    gateway = Gateway(proc, port, log_file)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise GatewayRefused(refusal(log_file))
        try:
            with urllib.request.urlopen(gateway.url("/ping"), timeout=2) as resp:
                if resp.status == 200:
                    return gateway
        except OSError:
            time.sleep(0.3)
    gateway.stop()
    raise GatewayRefused(f"no answer on /ping within 60 s: {log_tail(log_file, 8)}")


def refusal(path: Path) -> str:
    """Why the gateway exited at start: its error lines, without their time and level."""
    lines = log_tail(path, 20).splitlines()
    errors = [line for line in lines if "ERROR" in line or "rror" in line] or lines[-3:]
    return " | ".join(re.sub(r"^\d\d:\d\d:\d\d\s+ERROR\s+", "", e).strip() for e in errors)


def log_tail(path: Path, lines: int) -> str:
    if not path.is_file():
        return "(no log)"
    kept = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def wait_all_workers(ts: TorchServe, workers: dict[str, int], timeout_s: float) -> dict[str, int]:
    """Wait until every model has all its workers READY (TorchServe's own readiness needs one
    per model: the others would still be loading, and compiling, while the first rows run).
    The READY count per model when done or when ``timeout_s`` passed."""
    headers = {"Authorization": f"Bearer {ts.keys().management.key}"}
    deadline = time.monotonic() + timeout_s
    ready: dict[str, int] = {}
    with httpx.Client(base_url=ts.settings.url("management"), timeout=5.0) as client:
        while True:
            for name in workers:
                resp = client.get(f"/models/{name}", headers=headers)
                found = resp.json()[0].get("workers", []) if resp.status_code == 200 else []
                ready[name] = sum(w.get("status") == "READY" for w in found)
            if all(ready[n] >= want for n, want in workers.items()):
                return ready
            if time.monotonic() > deadline:
                log.warning("workers READY after %.0f s: %s of %s", timeout_s, ready, workers)
                return ready
            time.sleep(0.5)


def start_torchserve(
    store: Path, work: Path, served: dict[str, Served], args: argparse.Namespace
) -> tuple[TorchServe, dict[str, str]]:
    """TorchServe with every archive it can load: an archive whose workers fail at load is
    dropped (its model's rows then say why) and TorchServe started again without it, so that
    one model's failure does not lose the ceiling and the other model. The server, and the
    load failure of each dropped model."""
    dropped: dict[str, str] = {}
    for attempt in range(len(served) + 1):
        archives = tuple(s.archive for s in served.values() if s.archive)
        settings = TorchServeSettings(
            store=store,
            workdir=work / f"ts{attempt}",
            models=archives,
            ports=Ports.ephemeral(),
            job_queue_size=args.job_queue,
            ready_timeout_s=args.ready_timeout_s,
        )
        server = TorchServe(settings)
        try:
            server.start()
            server.wait_ready()
            return server, dropped
        except ServeError as exc:
            server.stop()
            failed = [
                n for n, s in served.items() if n != NOOP and s.archive and s.archive in str(exc)
            ]
            failed = failed or [n for n, s in served.items() if n != NOOP and s.archive]
            if not failed:
                raise
            for name in failed:
                log.error("[%s] TorchServe could not load %s: %s", name, served[name].archive, exc)
                dropped[name] = f"TorchServe could not load {served[name].archive}: {exc}"[-3000:]
                served[name].archive = None
    raise ServeError("TorchServe did not start with any set of archives")
