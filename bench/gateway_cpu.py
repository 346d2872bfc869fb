"""The gateway's own CPU per request, in-process, against a backend that answers at once.

No TorchServe, no sockets for REST: each request is one ASGI call into the data app
(``/predictions/mlp`` on the bare ASGI path, ``/v2/models/mlp/infer`` through FastAPI); gRPC
``Predictions`` and ``ModelInfer`` go through a real ``grpc.aio`` server on loopback with the
client in the same process (its CPU, and grpc's own threads', are in the figure: the same on
both sides, but noisy). CPU is the process's (``time.process_time``) over ``--requests``
requests after a warm-up.

To compare two checkouts (e.g. before and after a refactor), give each tree: every round runs
each tree once, alternating, in a fresh process whose ``PYTHONPATH`` is that tree; the medians
over rounds are reported, with the ratio to the first tree.

    .venv/bin/python bench/gateway_cpu.py --trees /tmp/before . [--rounds 7] [--requests 4000]
        [--cases rest_predictions ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("bench")
HERE = Path(__file__).resolve().parent
BODY = json.dumps({"inputs": [[float(i) / 16 for i in range(16)]]}).encode()
OIP_BODY = json.dumps(
    {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 16], "data": [0.5] * 16}]}
).encode()
ANSWER = json.dumps({"outputs": [{"name": "out", "datatype": "FP32", "shape": [1], "data": [1]}]})
CASES = ("rest_predictions", "rest_oip_infer", "grpc_predictions", "grpc_model_infer")


def fake_backend() -> Any:
    from gateway.backends import Backend, BackendResponse, ModelSignature, TensorSpec

    class Instant(Backend):
        name = "fake"

        async def predict(self, variant: Any, payload: Any, timeout_s: float) -> Any:
            return BackendResponse(200, ANSWER.encode(), "application/json")

        async def ready(self) -> bool:
            return True

        def signature(self, variant: Any) -> Any:
            spec = TensorSpec("features", "FP32", (-1, 16))
            return ModelSignature("raw", (spec,), (TensorSpec("out", "FP32", (-1,)),))

        async def scrape(self) -> str | None:
            return None

    return Instant()


def gateway() -> Any:
    from gateway.config import LoadedConfig, validate_config
    from gateway.settings import load_settings
    from gateway.state import Gateway, Table

    variants = [
        {"name": "stable", "backend": "fake", "model": "m", "weight": 90},
        {"name": "canary", "backend": "fake", "model": "m2", "weight": 10},
    ]
    config = validate_config(
        {
            "backends": {"fake": {"inference_url": "http://127.0.0.1:9"}},
            "routes": {"mlp": {"variants": variants, "pin_header": "X-Servegate-Variant"}},
        }
    )
    gw = Gateway(load_settings(grpc_port=0), LoadedConfig(config, "bench"), primary=False)
    gw.table = Table(gw.table.loaded, {"fake": fake_backend()})
    return gw


def asgi_call(app: Any, path: str, body: bytes) -> Callable[[], Awaitable[int]]:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }

    async def one() -> int:
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(scope), receive, send)
        return status

    return one


async def measure(one: Callable[[], Awaitable[Any]], requests: int) -> float:
    for _ in range(max(requests // 10, 50)):
        await one()
    started = time.process_time()
    for _ in range(requests):
        await one()
    return (time.process_time() - started) / requests * 1e6


async def worker(requests: int, cases: list[str]) -> dict[str, float]:
    import grpc

    from gateway.app import create_data_app
    from gateway.grpc.server import GrpcServer
    from gateway.grpc.stubs import grpc_predict_v2_pb2 as oip_pb
    from gateway.grpc.stubs import grpc_predict_v2_pb2_grpc as oip_grpc
    from gateway.grpc.stubs import inference_pb2 as ts_pb
    from gateway.grpc.stubs import inference_pb2_grpc as ts_grpc

    gw = gateway()
    app = create_data_app(gw)
    server = GrpcServer(gw, gw.settings)
    await server.start()
    out: dict[str, float] = {}
    try:
        rest = asgi_call(app, "/predictions/mlp", BODY)
        oip = asgi_call(app, "/v2/models/mlp/infer", OIP_BODY)
        assert await rest() == 200 and await oip() == 200
        if "rest_predictions" in cases:
            out["rest_predictions"] = await measure(rest, requests)
        if "rest_oip_infer" in cases:
            out["rest_oip_infer"] = await measure(oip, requests)
        if not {"grpc_predictions", "grpc_model_infer"} & set(cases):
            return out
        async with grpc.aio.insecure_channel(server.address) as channel:
            ts = ts_grpc.InferenceAPIsServiceStub(channel)
            v2 = oip_grpc.GRPCInferenceServiceStub(channel)
            predict = ts_pb.PredictionsRequest(model_name="mlp", input={"data": BODY})
            tensor = oip_pb.ModelInferRequest.InferInputTensor(
                name="features", datatype="FP32", shape=[1, 16]
            )
            tensor.contents.fp32_contents.extend([0.5] * 16)
            infer = oip_pb.ModelInferRequest(model_name="mlp", inputs=[tensor])
            grpc_n = max(requests // 4, 100)
            if "grpc_predictions" in cases:
                out["grpc_predictions"] = await measure(lambda: ts.Predictions(predict), grpc_n)
            if "grpc_model_infer" in cases:
                out["grpc_model_infer"] = await measure(lambda: v2.ModelInfer(infer), grpc_n)
    finally:
        await server.stop(0)
        await gw.aclose()
    return out


def run_tree(tree: Path, requests: int, cases: list[str]) -> dict[str, float]:
    """One measurement in a fresh process that imports ``gateway`` from ``tree`` (this file
    runs as a script, so no other checkout comes first on ``sys.path``)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, __file__, "--worker", "--requests", str(requests), "--cases", *cases]
    done = subprocess.run(argv, env=env, cwd=tree, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.splitlines()[-1])
    assert result.pop("gateway") == str(tree / "gateway"), result
    return {k: float(v) for k, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", nargs="+", type=Path, default=[Path(".")])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.worker:
        # Run as a script: its folder (bench/, whose grpc.py and gateway.py would shadow the
        # packages) must not come first on sys.path; the tree measured comes from PYTHONPATH.
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
        logging.getLogger().setLevel(logging.WARNING)
        import gateway

        result: dict[str, object] = {**asyncio.run(worker(args.requests, args.cases))}
        result["gateway"] = str(Path(gateway.__file__).parent)
        sys.stdout.write(json.dumps(result) + "\n")
        return
    trees = [t.resolve() for t in args.trees]
    runs: dict[Path, list[dict[str, float]]] = {t: [] for t in trees}
    for i in range(args.rounds):
        for tree in trees if i % 2 == 0 else trees[::-1]:
            runs[tree].append(run_tree(tree, args.requests, args.cases))
            log.info("round %d %s: %s", i + 1, tree, runs[tree][-1])
    log.info("\nmedian CPU per request (us) over %d rounds", args.rounds)
    log.info("%-18s %s", "case", "  ".join(f"{t.name or str(t):>14}" for t in trees))
    for case in args.cases:
        medians = [statistics.median(r[case] for r in runs[t]) for t in trees]
        ratios = "  ".join(f"{m:9.1f} x{m / medians[0]:.3f}" for m in medians)
        log.info("%-18s %s", case, ratios)


if __name__ == "__main__":
    main()
