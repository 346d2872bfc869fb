"""Streamed generation, TorchServe direct vs through the gateway, one run, on the CPU.

A random-weight tiny Llama (``tests/support/causal_lm.py``) is exported ``eager`` and served;
the gateway runs in its own process. Streams are sent one at a time, alternating direct and
through the gateway, and for each the time to the first token (first piece received) and the
tokens per second after it are taken on the client. It reports the medians of each and the
gateway's added time to first token. The model is tiny: the figures say what the relay costs,
not what generation costs.

    .venv/bin/python -m bench.gateway_stream [--streams 20] [--tokens 48]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from bench.common import emit, spawn_gateway, torchserve
from servegate.ports import free_ports

log = logging.getLogger("bench")
PROMPT = "The quick brown fox jumps over the lazy dog."


def one_stream(url: str, headers: dict[str, str], tokens: int) -> tuple[float, float]:
    """(seconds to the first piece, tokens per second after it) of one streamed answer."""
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": tokens}, "stream": True}
    started = time.perf_counter()
    first = last = None
    with httpx.stream("POST", url, json=body, headers=headers, timeout=120) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if line.strip():
                last = time.perf_counter()
                first = first or last
    assert first is not None and last is not None
    return first - started, (tokens - 1) / max(last - first, 1e-9)


def _wait_serving(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the gateway did not serve within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=48)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    from export.generation.options import GenerationOptions
    from export.pipeline import ExportRequest, run_export
    from export.sources.options import SourceOptions
    from tests.support.causal_lm import tiny_llama

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        llama = tiny_llama(root / "tiny_llama")
        options = GenerationOptions(max_prompt_tokens=64, max_new_tokens=128)
        request = ExportRequest(
            model=f"hf:{llama}",
            out=root / "store",
            formats=("eager",),
            generation=options,
            source=SourceOptions(name="llama"),
        )
        report = run_export(request)
        assert not report.failed, report.failed
        with torchserve(root / "store", root / "ts") as ts:
            s = ts.settings
            backend = {"inference_url": s.url("inference"), "key_file": str(s.key_file)}
            stable = {"name": "stable", "backend": "ts", "model": "llama_eager", "weight": 100}
            routes = {"llama": {"variants": [stable], "timeout_s": 60}}
            config = root / "gateway.yaml"
            config.write_text(yaml.safe_dump({"backends": {"ts": backend}, "routes": routes}))
            port, admin, grpc = free_ports(3)
            proc = spawn_gateway(config, port, admin, grpc, root / "gateway.log")
            try:
                _wait_serving(f"http://127.0.0.1:{port}/ping")
                direct = f"{s.url('inference')}/predictions/llama_eager/1.0"
                auth = {"Authorization": f"Bearer {ts.keys().inference.key}"}
                through = f"http://127.0.0.1:{port}/predictions/llama"
                runs: dict[str, list[tuple[float, float]]] = {"direct": [], "gateway": []}
                one_stream(direct, auth, args.tokens)  # warm-up, both paths
                one_stream(through, {}, args.tokens)
                for _ in range(args.streams):
                    runs["direct"].append(one_stream(direct, auth, args.tokens))
                    runs["gateway"].append(one_stream(through, {}, args.tokens))
            finally:
                proc.terminate()
                proc.wait(30)
    result: dict[str, object] = {"streams": args.streams, "tokens": args.tokens}
    for name, values in runs.items():
        result[f"{name}_ttft_p50_ms"] = round(statistics.median(v[0] for v in values) * 1000, 2)
        result[f"{name}_tokens_per_s_p50"] = round(statistics.median(v[1] for v in values), 1)
    added = float(str(result["gateway_ttft_p50_ms"])) - float(str(result["direct_ttft_p50_ms"]))
    result["gateway_added_ttft_ms"] = round(added, 2)
    emit(result, None)


if __name__ == "__main__":
    main()
