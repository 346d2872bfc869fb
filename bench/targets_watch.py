"""What each party of a served benchmark used while the load ran (``bench.gpu_targets``).

``Sampler`` reads the CPU time of groups of processes (TorchServe's frontend, its workers, the
gateway's processes) and of the whole machine every ``every_s``, and the GPU's utilisation from
``nvidia-smi`` where there is one; ``cores(start, end)`` interpolates the samples to a load's
own timed window, so process start-up and the warm-up are not counted. ``ts_counters`` reads
TorchServe's Prometheus counters per model: requests that reached TorchServe (so coalescing
shows as fewer upstream requests than client requests) and their time in its queue.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
import urllib.request
from bisect import bisect_left

import psutil

SAMPLE = re.compile(r"^(\w+)\{([^}]*)\}\s+(\S+)$")


def _busy(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:  # a process that exited keeps no account
            continue
        total += times.user + times.system
    return total


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


class Sampler:
    def __init__(self, groups: dict[str, list[psutil.Process]], every_s: float = 0.2) -> None:
        self.groups = groups
        self.every_s = every_s
        self.times: list[float] = []
        self.samples: list[dict[str, float]] = []
        self.gpu: list[tuple[float, float]] = []  # (time, utilisation %)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Sampler:
        self._threads.append(threading.Thread(target=self._cpu_loop, daemon=True))
        smi = shutil.which("nvidia-smi")
        if smi:
            self._threads.append(threading.Thread(target=self._gpu_loop, args=(smi,), daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _cpu_loop(self) -> None:
        while not self._stop.is_set():
            sample = {name: _busy(procs) for name, procs in self.groups.items()}
            sample["machine"] = _machine_busy()
            self.times.append(time.time())
            self.samples.append(sample)
            self._stop.wait(self.every_s)

    def _gpu_loop(self, smi: str) -> None:
        """One query at a time (``nvidia-smi -l`` buffers its lines when writing to a pipe)."""
        argv = [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        while not self._stop.is_set():
            try:
                run = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=5)
                self.gpu.append((time.time(), float(run.stdout.splitlines()[0])))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                pass
            self._stop.wait(0.5)

    def cores(self, start: float, end: float) -> dict[str, float]:
        """Cores each group kept busy (CPU seconds per second) between ``start`` and ``end``
        (epoch seconds), and the GPU's mean utilisation there."""
        out: dict[str, float] = {}
        if len(self.times) >= 2 and end > start:
            for name in self.samples[0]:
                used = self._at(name, end) - self._at(name, start)
                out[f"{name}_cores"] = round(used / (end - start), 2)
        busy = [u for t, u in self.gpu if start <= t <= end]
        if busy:
            out["gpu_util_pct"] = round(sum(busy) / len(busy), 1)
        return out

    def _at(self, name: str, when: float) -> float:
        """The group's CPU seconds at ``when``, interpolated between the nearest samples."""
        i = min(max(bisect_left(self.times, when), 1), len(self.times) - 1)
        t0, t1 = self.times[i - 1], self.times[i]
        v0, v1 = self.samples[i - 1][name], self.samples[i][name]
        share = 0.0 if t1 == t0 else min(max((when - t0) / (t1 - t0), 0.0), 1.0)
        return v0 + share * (v1 - v0)


def ts_counters(metrics_url: str, model: str) -> dict[str, float]:
    """TorchServe's request count, and the summed time (µs) its requests spent in its queue and
    in all (frontend in to frontend out), for ``model`` so far."""
    with urllib.request.urlopen(f"{metrics_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    wanted = {
        "ts_inference_requests_total": "requests",
        "ts_queue_latency_microseconds": "queue_us",
        "ts_inference_latency_microseconds": "latency_us",
    }
    out = dict.fromkeys(wanted.values(), 0.0)
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match.group(1) in wanted and f'model_name="{model}"' in match.group(2):
            out[wanted[match.group(1)]] += float(match.group(3))
    return out
