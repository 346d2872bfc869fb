"""TorchServe direct vs through the gateway, same load, one run, on the ``mlp`` archive.

wrk (Debian's ``wrk``) drives fixed connections for a fixed duration against
``/predictions/mlp_torchscript/1.0`` directly and against ``/predictions/mlp`` on a gateway
running in its own process (``servegate gateway run``), and reports p50/p99/throughput and the
gateway's added latency and throughput ratio. Targets: +p50 <= 1 ms, +p99 <= 3 ms, >= 90%.

    .venv/bin/python -m bench.gateway [--connections 8] [--duration 15]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from bench.common import torchserve
from export.pipeline import ExportRequest, run_export
from export.timing import TimingPlan

log = logging.getLogger("bench")
BODY = json.dumps({"inputs": [[0.1 * i for i in range(16)]]})
LUA = """wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
{auth}
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(
    url: str, connections: int, duration: int, workdir: Path, key: str | None
) -> dict[str, float]:
    script = workdir / "post.lua"
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"' if key else ""
    script.write_text(LUA.format(body=BODY, auth=auth))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lat = {q: float(v) * UNITS[u] for q, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", out)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests against {url}:\n{out}")
    return {"p50_ms": lat["50"], "p99_ms": lat["99"], "rps": rps}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gateway(
    config: Path, port: int, admin_port: int, log_file: Path
) -> subprocess.Popen[bytes]:
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
        "--token-file",
        str(config.with_name("no-token")),
    ]
    proc = subprocess.Popen(argv, stdout=log_file.open("wb"), stderr=subprocess.STDOUT)
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
    parser.add_argument("--rounds", type=int, default=2, help="alternating direct/gateway rounds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if shutil.which("wrk") is None:
        log.error("wrk is missing: apt-get install -y wrk")
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        work = Path(tmp)
        store = work / "store"
        run_export(
            ExportRequest(
                model="mlp",
                out=store,
                formats=("torchscript",),
                timing=TimingPlan(warmup=1, min_runs=1, max_runs=1, budget_s=0.0),
            )
        )
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
            port = free_port()
            gw = start_gateway(config, port, free_port(), work / "gateway.log")
            try:
                direct_url = f"{s.url('inference')}/predictions/mlp_torchscript/1.0"
                gateway_url = f"http://127.0.0.1:{port}/predictions/mlp"
                key = ts.keys().inference.key
                wrk(direct_url, args.connections, 3, work, key)  # warm-up both paths
                wrk(gateway_url, args.connections, 3, work, None)
                runs: dict[str, list[dict[str, float]]] = {"direct": [], "gateway": []}
                for _ in range(args.rounds):
                    runs["direct"].append(
                        wrk(direct_url, args.connections, args.duration, work, key)
                    )
                    runs["gateway"].append(
                        wrk(gateway_url, args.connections, args.duration, work, None)
                    )
            finally:
                gw.terminate()
                gw.wait(30)
    report(runs, args)
    return 0


def report(runs: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    best = {
        k: {m: (min if m != "rps" else max)(r[m] for r in v) for m in v[0]} for k, v in runs.items()
    }
    d, g = best["direct"], best["gateway"]
    lines = [
        f"mlp TorchScript, wrk -t1 -c{args.connections} -d{args.duration}s, "
        f"best of {args.rounds} alternating rounds",
        f"{'':10}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}",
    ]
    for name, r in best.items():
        lines.append(f"{name:10}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}{r['rps']:>10.0f}")
    added50, added99, ratio = (
        g["p50_ms"] - d["p50_ms"],
        g["p99_ms"] - d["p99_ms"],
        g["rps"] / d["rps"],
    )
    lines += [
        f"added p50 {added50:+.2f} ms (target <= 1), added p99 {added99:+.2f} ms "
        f"(target <= 3), throughput {ratio:.1%} of direct (target >= 90%)",
        "every round: " + json.dumps(runs),
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
