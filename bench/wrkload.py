"""One wrk run with any JSON body: p50/p99 latency and requests per second."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

SCRIPT = """wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, body: str, connections: int, seconds: int, key: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(SCRIPT.format(body=body, key=key))
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script)]
        out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    lat = {q: float(v) * UNITS[u] for q, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", out)}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None or "50" not in lat or re.search(r"Non-2xx or 3xx responses", out):
        raise RuntimeError(f"wrk against {url} failed or saw errors:\n{out}")
    return {"p50_ms": lat["50"], "p99_ms": lat["99"], "rps": float(rps.group(1))}
