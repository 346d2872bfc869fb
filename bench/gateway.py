"""TorchServe direct vs through the gateway, same load, one run, on the ``mlp`` archive.

wrk (Debian's ``wrk``) drives fixed connections for a fixed duration against
``/predictions/mlp_torchscript/1.0`` directly and against ``/predictions/mlp`` on a gateway
running in its own process (``servegate gateway run``), in alternating rounds, and reports the
median p50/p99/throughput of each, the gateway's added latency and throughput ratio. Targets:
+p50 <= 1 ms, +p99 <= 3 ms, >= 90%.

It also reports CPU time per request of the gateway process, of TorchServe (frontend and
workers) and of wrk, and how many cores each run kept busy (req/s x CPU per request). On a
small, shared machine those are steadier than latency. They bound the ratio only when the
direct run is CPU-bound (its processes keep nearly every core busy): then throughput through
the gateway is at most about ``direct CPU / (direct CPU + gateway CPU)`` of direct. When the
direct run leaves cores idle (one TorchServe worker at batch 1 is bound by its own round trip,
and on the 16-core H200 nothing is CPU-bound), no such ceiling applies: the gateway's CPU comes
from idle cores, and the ratio can pass 100% when TorchServe spends less per request behind
the gateway's kept-alive connection pool than behind wrk's connections.

    .venv/bin/python -m bench.gateway [--connections 8] [--duration 15] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import yaml

from bench.common import gateway_processes, quick_export, spawn_gateway, torchserve
from servegate.ports import free_ports

log = logging.getLogger("bench")
BODY = json.dumps({"inputs": [[0.1 * i for i in range(16)]]})
LUA = """wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
{auth}
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(
    url: str,
    connections: int,
    duration: int,
    workdir: Path,
    key: str | None,
    *,
    watch: dict[str, list[psutil.Process]] | None = None,
) -> dict[str, float]:
    """One wrk run; with ``watch``, also the CPU ms per request of each named process group."""
    script = workdir / "post.lua"
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"' if key else ""
    script.write_text(LUA.format(body=BODY, auth=auth))
    watch = watch or {}
    before = {name: _cpu(procs) for name, procs in watch.items()}
    wrk_before = _children_cpu()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wrk_cpu = _children_cpu() - wrk_before
    lat = {q: float(v) * UNITS[u] for q, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", out)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests against {url}:\n{out}")
    result = {"p50_ms": lat["50"], "p99_ms": lat["99"], "rps": rps}
    for name, procs in watch.items():
        result[f"{name}_cpu_ms"] = 1000 * (_cpu(procs) - before[name]) / total
    result["wrk_cpu_ms"] = 1000 * wrk_cpu / total
    return result


def _cpu(procs: list[psutil.Process]) -> float:
    """User + system CPU seconds of ``procs`` so far."""
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def torchserve_processes(pid: int | None) -> list[psutil.Process]:
    """TorchServe's frontend and its model workers."""
    if pid is None:
        raise RuntimeError("TorchServe is not running")
    frontend = psutil.Process(pid)
    return [frontend, *frontend.children(recursive=True)]


def start_gateway(
    config: Path, port: int, admin_port: int, log_file: Path, workers: int = 1
) -> subprocess.Popen[bytes]:
    proc = spawn_gateway(config, port, admin_port, free_ports(1)[0], log_file, workers=workers)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"gateway did not start; see {log_file}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3, help="alternating direct/gateway rounds")
    parser.add_argument("--workers", type=int, default=1, help="gateway data-plane processes")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="TorchServe batchSize of the mlp archive (default: the spec's). With dynamic "
        "batching, how requests arrive changes how full batches are: 1 isolates the proxy cost",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if shutil.which("wrk") is None:
        log.error("wrk is missing: apt-get install -y wrk")
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        work = Path(tmp)
        store = work / "store"
        overrides = {} if args.batch_size is None else {"batch_size": args.batch_size}
        quick_export("mlp", store, ("torchscript",), serving=overrides)
        with torchserve(store, work / "ts") as ts:
            s = ts.settings
            config = work / "gateway.yaml"
            backend = {"inference_url": s.url("inference"), "key_file": str(s.key_file)}
            stable = {"name": "stable", "backend": "ts", "model": "mlp_torchscript", "weight": 100}
            config.write_text(
                yaml.safe_dump(
                    {"backends": {"ts": backend}, "routes": {"mlp": {"variants": [stable]}}}
                )
            )
            port, admin_port = free_ports(2)
            gw = start_gateway(config, port, admin_port, work / "gateway.log", args.workers)
            try:
                urls = {
                    "direct": f"{s.url('inference')}/predictions/mlp_torchscript/1.0",
                    "gateway": f"http://127.0.0.1:{port}/predictions/mlp",
                }
                runs = measure(
                    urls,
                    ts.keys().inference.key,
                    args,
                    work,
                    gateway=gateway_processes(gw, args.workers),
                    ts=torchserve_processes(ts.pid()),
                )
            finally:
                gw.terminate()
                gw.wait(30)
    report(runs, args)
    return 0


def measure(
    urls: dict[str, str],
    key: str,
    args: argparse.Namespace,
    work: Path,
    *,
    gateway: list[psutil.Process],
    ts: list[psutil.Process],
) -> dict[str, list[dict[str, float]]]:
    keys = {"direct": key, "gateway": None}
    watch = {"direct": {"ts": ts}, "gateway": {"ts": ts, "gateway": gateway}}
    for name, url in urls.items():  # warm-up both paths
        wrk(url, args.connections, 3, work, keys[name])
    runs: dict[str, list[dict[str, float]]] = {"direct": [], "gateway": []}
    for _ in range(args.rounds):
        for name, url in urls.items():
            result = wrk(url, args.connections, args.duration, work, keys[name], watch=watch[name])
            log.info("%s: %s", name, json.dumps(result))
            runs[name].append(result)
    return runs


def report(runs: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    med = {
        k: {m: statistics.median(r.get(m, 0.0) for r in v) for m in v[-1]} for k, v in runs.items()
    }
    d, g = med["direct"], med["gateway"]
    # Each gateway round against the direct round just before it: ratios from the same minute.
    pairs = list(zip(runs["direct"], runs["gateway"], strict=True))
    ratio = statistics.median(gr["rps"] / dr["rps"] for dr, gr in pairs)
    added50 = statistics.median(gr["p50_ms"] - dr["p50_ms"] for dr, gr in pairs)
    added99 = statistics.median(gr["p99_ms"] - dr["p99_ms"] for dr, gr in pairs)
    lines = [
        f"mlp TorchScript, wrk -t1 -c{args.connections} -d{args.duration}s, "
        f"median of {args.rounds} alternating rounds ({os.cpu_count()} CPUs)",
        f"{'':10}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}"
        f"{'CPU ms per request: TorchServe':>33}{'gateway':>9}{'wrk':>7}",
    ]
    for name, r in med.items():
        lines.append(
            f"{name:10}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['rps']:>9.0f}"
            f"{r['ts_cpu_ms']:>33.3f}{r.get('gateway_cpu_ms', 0.0):>9.3f}{r['wrk_cpu_ms']:>7.3f}"
        )
    lines += [
        f"added p50 {added50:+.2f} ms (target <= 1), added p99 {added99:+.2f} ms "
        f"(target <= 3), throughput {ratio:.1%} of direct (target >= 90%); "
        "medians of per-round differences and ratios",
        ceiling_line(d, g),
        "every round: " + json.dumps(runs),
    ]
    sys.stdout.write("\n".join(lines) + "\n")


CPU_BOUND = 0.9  # share of the machine's cores a run must keep busy to be called CPU-bound


def busy_cores(run: dict[str, float]) -> float:
    """Cores the measured processes kept busy: req/s x CPU seconds per request."""
    cpu_ms = run["ts_cpu_ms"] + run.get("gateway_cpu_ms", 0.0) + run["wrk_cpu_ms"]
    return run["rps"] * cpu_ms / 1000


def ceiling_line(direct: dict[str, float], gateway: dict[str, float]) -> str:
    """The CPU ceiling of the ratio, only where its premise holds (a CPU-bound direct run)."""
    cores = os.cpu_count() or 1
    used = busy_cores(direct)
    busy = (
        f"cores busy: direct {used:.2f}, gateway {busy_cores(gateway):.2f} of {cores}; "
        f"TorchServe CPU per request direct {direct['ts_cpu_ms']:.3f} ms, "
        f"behind the gateway {gateway['ts_cpu_ms']:.3f} ms"
    )
    if used < CPU_BOUND * cores:
        return (
            f"{busy}. The direct run is not CPU-bound ({used / cores:.0%} of the cores), so the "
            "gateway's CPU sets no ceiling on the ratio here"
        )
    direct_cpu = direct["ts_cpu_ms"] + direct["wrk_cpu_ms"]
    ceiling = direct_cpu / (direct_cpu + gateway["gateway_cpu_ms"])
    return f"{busy}. CPU-bound: the ratio's ceiling at this gateway CPU per request {ceiling:.0%}"


if __name__ == "__main__":
    sys.exit(main())
