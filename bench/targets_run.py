"""One run of ``bench.gpu_targets``: export, start TorchServe and the gateway, then every row.

A row that cannot run (no archive, the gateway refused coalescing, the time budget spent) or
that fails while running is recorded with its reason, and the run goes on to the next; the
results file is rewritten after every row.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import gateway_processes
from bench.loadgen import Load, run_load
from bench.targets_report import table
from bench.targets_rows import Bodies, Row, all_rows, check_answer, route_path
from bench.targets_stack import (
    NOOP,
    Gateway,
    GatewayRefused,
    Served,
    build_store,
    gateway_config,
    start_gateway,
    start_torchserve,
    wait_all_workers,
)
from bench.targets_watch import Sampler, ts_counters
from servegate.torchserve.process import TorchServe

log = logging.getLogger("bench")
# Inductor's compile processes per worker (its default: one per core, up to 32, in each of the
# 16 or so workers); not part of Inductor's cache key, so cache hits are unaffected.
COMPILE_THREADS = "TORCHINDUCTOR_COMPILE_THREADS"
MAX_ERRORS = 10**9  # count failed requests, never stop a row for them
ROW_OVERHEAD_S = 12.0  # client processes start twice, the answer check, the counters
MODEL_LOG_MARKS = {
    "cache_hits": "Inductor cache hit",
    "cold_compiles": "graph(s) cold",
    "cudagraph_skips": "skipping cudagraphs",
    "tracebacks": "Traceback",
}


class Run:
    def __init__(self, args: argparse.Namespace, work: Path, started: float) -> None:
        self.args = args
        self.work = work
        self.started = started
        settings = {k: v for k, v in vars(args).items() if k != "out"}
        self.results: dict[str, Any] = {"benchmark": "gpu_targets", "settings": settings}
        self.results["rows"] = []
        self.bodies = Bodies()
        self.ts: TorchServe | None = None
        self.gateway: Gateway | None = None
        self.gateway_procs: list[psutil.Process] = []
        self.coalesce_error: str | None = None
        self._finished = False

    def save(self) -> None:
        out = self.args.out
        partial = out.with_name(out.name + ".partial")
        partial.write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        partial.replace(out)

    def finish(self) -> None:
        """Save the results and print the table, once: before TorchServe stops (a run cut short
        by ``timeout`` may be killed while it stops) or, failing that, at the very end."""
        if self._finished:
            return
        self._finished = True
        self.save()
        sys.stdout.write(table(self.results) + "\n")
        sys.stdout.flush()

    def execute(self) -> None:
        served = build_store(self.work / "store", self.args)
        self.results["exports"] = {
            name: {"archive": s.archive, "format": s.format, "precision": s.precision, **s.export}
            for name, s in served.items()
        }
        self.save()
        if self.args.worker_compile_threads:  # TorchServe's workers inherit the environment
            os.environ[COMPILE_THREADS] = str(self.args.worker_compile_threads)
        began = time.perf_counter()
        ts, dropped = start_torchserve(self.work / "store", self.work, served, self.args)
        self.ts = ts
        try:
            self._ready(served, dropped, began)
            self._start_gateway(served)
            for row in all_rows(self.args):
                self.results["rows"].append(self._row(row, served))
                self.save()
        finally:
            self.finish()
            if self.gateway is not None:
                self.gateway.stop()
            self._keep_logs(ts)
            ts.stop()

    def _ready(self, served: dict[str, Served], dropped: dict[str, str], began: float) -> None:
        """Wait for every worker of every model; the start times and any load failure."""
        assert self.ts is not None
        self.results["torchserve_start_s"] = round(time.perf_counter() - began, 1)
        for name, reason in dropped.items():
            self.results["exports"][name]["load_error"] = reason
        wanted = {
            s.archive: self.args.ceiling_workers if name == NOOP else self.args.gpu_workers
            for name, s in served.items()
            if s.archive
        }
        ready = wait_all_workers(self.ts, wanted, self.args.ready_timeout_s)
        self.results["workers_ready"] = ready
        self.results["all_workers_ready_s"] = round(time.perf_counter() - began, 1)
        log.info(
            "TorchServe: a worker per model after %.1f s, all workers %s after %.1f s",
            self.results["torchserve_start_s"],
            ready,
            self.results["all_workers_ready_s"],
        )
        self.save()

    def _start_gateway(self, served: dict[str, Served]) -> None:
        assert self.ts is not None
        coalesce = {
            "max_items": self.args.coalesce_items,
            "max_wait_ms": self.args.coalesce_wait_ms,
        }
        workers = self.args.gateway_workers
        info: dict[str, Any] = {"processes": workers, "coalesce": coalesce}
        self.results["gateway"] = info
        try:
            config = gateway_config(self.ts.settings, served, coalesce)
            self.gateway = start_gateway(config, self.work, workers, "gateway")
        except GatewayRefused as exc:
            self.coalesce_error = f"the gateway refused the coalesce route field: {exc}"
            info["coalesce_error"] = self.coalesce_error
            log.error("%s", self.coalesce_error)
            try:
                config = gateway_config(self.ts.settings, served, None)
                self.gateway = start_gateway(config, self.work, workers, "gateway-plain")
            except GatewayRefused as plain:
                info["error"] = f"the gateway did not start: {plain}"
                log.error("%s", info["error"])
                return
        try:
            self.gateway_procs = gateway_processes(self.gateway.proc, workers)
        except RuntimeError as exc:  # fewer processes than asked: measure what runs
            info["warning"] = str(exc)
            primary = psutil.Process(self.gateway.proc.pid)
            self.gateway_procs = [primary, *primary.children()]

    def _row(self, row: Row, served: dict[str, Served]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "row": row.name,
            "path": row.path,
            "items_per_request": row.items,
            "concurrency": row.concurrency,
        }
        one = served.get(row.model)
        reason = self._cannot_run(row, one)
        if reason is not None:
            log.warning("row %s: %s", row.name, reason)
            return result | {"error": reason}
        assert one is not None
        result["format"] = f"{one.format} {one.precision}"
        log.info("row %s (%s, %s) ...", row.name, row.path, result["format"])
        try:
            result |= self._measure(row, one)
        except Exception as exc:  # one row's failure is its result; the next row still runs
            log.exception("row %s failed", row.name)
            result["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        log.info("row %s: %s", row.name, json.dumps(result))
        return result

    def _cannot_run(self, row: Row, one: Served | None) -> str | None:
        if one is None or one.archive is None:
            return f"no archive for {row.model}: see exports"
        if not row.direct and self.gateway is None:
            return str(self.results["gateway"].get("error", "the gateway is not running"))
        if row.coalesced and self.coalesce_error is not None:
            return self.coalesce_error
        needed = self.args.warmup_s * row.warmup_factor + self.args.seconds + ROW_OVERHEAD_S
        spent = time.monotonic() - self.started
        if spent + needed > self.args.budget_s:
            return f"skipped: {spent:.0f} s spent, {needed:.0f} s more would pass --budget-s"
        return None

    def _target(self, row: Row, one: Served) -> tuple[str, dict[str, str]]:
        assert self.ts is not None and one.archive is not None
        headers = {"Content-Type": "application/json"}
        if row.direct:
            headers["Authorization"] = f"Bearer {self.ts.keys().inference.key}"
            return f"{self.ts.settings.url('inference')}/predictions/{one.archive}", headers
        assert self.gateway is not None
        return self.gateway.url(route_path(row)), headers

    def _measure(self, row: Row, one: Served) -> dict[str, Any]:
        assert self.ts is not None and one.archive is not None
        args = self.args
        url, headers = self._target(row, one)
        body = self.bodies.body(row)
        out: dict[str, Any] = {"answer": check_answer(url, body, headers, row)}
        metrics = self.ts.settings.url("metrics")
        marks = self._model_log_size()  # the workers' log, from the warm-up on
        failures: list[str] = []
        warmup_s = args.warmup_s * row.warmup_factor
        warm = Load(url, body, headers, row.concurrency, warmup_s, row.decode, MAX_ERRORS)
        out["warmup"] = {"seconds": warmup_s} | _brief(run_load(warm, args.clients, failures))
        before = ts_counters(metrics, one.archive)  # TorchServe's counters: the timed load only
        timed = Load(url, body, headers, row.concurrency, args.seconds, row.decode, MAX_ERRORS)
        with Sampler(self._groups()) as sampler:
            figures = run_load(timed, args.clients, failures)
        after = ts_counters(metrics, one.archive)
        window = figures.pop("window_start"), figures.pop("window_end")
        out |= figures | sampler.cores(*window)
        out["items_per_s"] = round(figures["rps"] * row.items, 1)
        sent = figures["requests"] + figures.get("errors", 0)
        upstream = after["requests"] - before["requests"]
        out["upstream_per_client_request"] = round(upstream / max(sent, 1), 3)
        for key in ("queue", "latency"):  # per request that reached TorchServe
            spent_ms = (after[f"{key}_us"] - before[f"{key}_us"]) / 1000
            out[f"ts_{key}_ms_mean"] = round(spent_ms / max(upstream, 1), 2)
        out["model_log"] = self._model_log_marks(marks)
        if failures:
            out["first_errors"] = failures[:3]
        return out

    def _groups(self) -> dict[str, list[psutil.Process]]:
        assert self.ts is not None
        pid = self.ts.pid()
        frontend = [psutil.Process(pid)] if pid is not None else []
        workers = [c for p in frontend for c in p.children(recursive=True)]
        groups = {"torchserve_frontend": frontend, "torchserve_workers": workers}
        return groups | {"gateway": self.gateway_procs}

    def _model_log(self) -> Path | None:
        return None if self.ts is None else self.ts.settings.logdir / "model_log.log"

    def _model_log_size(self) -> int:
        path = self._model_log()
        return path.stat().st_size if path is not None and path.is_file() else 0

    def _model_log_marks(self, since: int) -> dict[str, int]:
        """How often each mark appeared in the workers' log since byte ``since``."""
        path = self._model_log()
        if path is None or not path.is_file():
            return {}
        with path.open("rb") as fh:
            fh.seek(since)
            text = fh.read().decode(errors="replace")
        return {key: text.count(mark) for key, mark in MODEL_LOG_MARKS.items()}

    def _keep_logs(self, ts: TorchServe) -> None:
        """The tails of TorchServe's and the gateway's logs beside the results."""
        keep = {
            "model-log": ts.settings.logdir / "model_log.log",
            "ts-log": ts.settings.logdir / "ts_log.log",
        }
        for name in ("gateway", "gateway-plain"):
            keep[name] = self.work / f"{name}.log"
        for name, path in keep.items():
            if path.is_file():
                target = self.args.out.with_name(f"{self.args.out.stem}-{name}.txt")
                target.write_text(path.read_text(errors="replace")[-300_000:])


def _brief(figures: dict[str, float]) -> dict[str, float]:
    keep = ("rps", "p50_ms", "p99_ms", "requests", "errors", "client_cores")
    return {k: v for k, v in figures.items() if k in keep}
