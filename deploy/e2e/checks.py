"""Traffic through the published ports: the weighted split, OIP v2, gRPC, the admin API."""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import httpx

from deploy.e2e.steps import StepFailed

log = logging.getLogger("servegate.e2e.checks")

ROUTE = "minilm"
TEXT_HEADERS = {"Content-Type": "text/plain"}


@dataclass(frozen=True)
class Split:
    counts: dict[str, int]
    statuses: dict[int, int]
    seconds: float

    def share(self, variant: str) -> float:
        return 100.0 * self.counts.get(variant, 0) / max(1, sum(self.counts.values()))

    def describe(self) -> str:
        shares = ", ".join(f"{v} {self.share(v):.1f}%" for v in sorted(self.counts))
        rate = sum(self.statuses.values()) / self.seconds
        return f"{shares}; statuses {dict(self.statuses)}; {rate:.0f} req/s"


def split(base_url: str, n: int, concurrency: int = 8) -> Split:
    """``n`` unpinned, unkeyed requests: which variant served each (X-Servegate-Variant)."""
    url = f"{base_url}/predictions/{ROUTE}"

    with httpx.Client(timeout=30) as client:

        def one(i: int) -> tuple[int, str]:
            resp = client.post(url, content=f"request {i}: hello world", headers=TEXT_HEADERS)
            return resp.status_code, resp.headers.get("x-servegate-variant", "")

        start = time.monotonic()
        with ThreadPoolExecutor(concurrency) as pool:
            answers = list(pool.map(one, range(n)))
    seconds = time.monotonic() - start
    statuses = Counter(code for code, _ in answers)
    counts = Counter(variant for code, variant in answers if code == 200)
    return Split(dict(counts), dict(statuses), seconds)


def expect_split(result: Split, wanted: dict[str, float], tolerance_points: float) -> None:
    if set(result.statuses) != {200}:
        raise StepFailed(f"not every request answered 200: {result.describe()}")
    for variant, share in wanted.items():
        if abs(result.share(variant) - share) > tolerance_points:
            raise StepFailed(
                f"{variant} served {result.share(variant):.1f}%, wanted {share} "
                f"+/- {tolerance_points}: {result.describe()}"
            )


def oip_infer(base_url: str) -> str:
    body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]}
    resp = httpx.post(f"{base_url}/v2/models/{ROUTE}/infer", json=body, timeout=30)
    if resp.status_code != 200:
        raise StepFailed(f"OIP v2 infer answered {resp.status_code}: {resp.text[:300]}")
    out = resp.json()["outputs"][0]
    if out["shape"][0] != 2:
        raise StepFailed(f"OIP v2 output shape {out['shape']}, wanted 2 rows")
    variant = resp.headers.get("x-servegate-variant", "?")
    return f"outputs[0] {out['name']} {out['datatype']} {out['shape']} from {variant}"


def grpc_infer(address: str) -> str:
    """OIP v2 over the gateway's gRPC port: ServerReady, then ModelInfer of one text."""
    from gateway.grpc.stubs import grpc_predict_v2_pb2 as pb
    from gateway.grpc.stubs import grpc_predict_v2_pb2_grpc as pb_grpc

    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        if not stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready:
            raise StepFailed(f"gRPC ServerReady on {address} says not ready")
        tensor = pb.ModelInferRequest.InferInputTensor(
            name="text",
            datatype="BYTES",
            shape=[1],
            contents=pb.InferTensorContents(bytes_contents=[b"hello over grpc"]),
        )
        answer = stub.ModelInfer(
            pb.ModelInferRequest(model_name=ROUTE, inputs=[tensor]), timeout=30
        )
    shapes = [list(o.shape) for o in answer.outputs]
    if not shapes or shapes[0][0] != 1:
        raise StepFailed(f"gRPC ModelInfer answered outputs of shapes {shapes}")
    return f"ServerReady true; ModelInfer {answer.model_name} outputs {shapes}"


def put_weights(admin_url: str, token: str, weights: dict[str, int]) -> httpx.Response:
    """The admin API's weight change: read the version, PUT with If-Match."""
    auth = {"Authorization": f"Bearer {token}"}
    route = httpx.get(f"{admin_url}/admin/routes/{ROUTE}", headers=auth, timeout=10)
    if route.status_code != 200:
        raise StepFailed(f"GET /admin/routes/{ROUTE} answered {route.status_code}: {route.text}")
    version = route.json()["version"]
    return httpx.put(
        f"{admin_url}/admin/routes/{ROUTE}/weights",
        json={"weights": weights},
        headers={**auth, "If-Match": f'"{version}"', "X-Servegate-Actor": "test-deploy"},
        timeout=10,
    )


def refused_on_read_only(admin_url: str, token: str, weights: dict[str, int]) -> str:
    """With compose's default read-only mount a change must be a clear 409, nothing applied."""
    resp = put_weights(admin_url, token, weights)
    if resp.status_code != 409 or "cannot write" not in resp.text:
        raise StepFailed(f"read-only config: PUT answered {resp.status_code}: {resp.text}")
    return f"read-only mount: 409 {resp.json()['error']}"


def set_weights(admin_url: str, token: str, weights: dict[str, int]) -> dict[str, Any]:
    """A weight change that must apply: 200, the new weights, and 401 without the token."""
    resp = put_weights(admin_url, token, weights)
    if resp.status_code != 200:
        raise StepFailed(f"PUT weights answered {resp.status_code}: {resp.text}")
    variants = resp.json()["route"]["variants"]
    got = {v["name"]: v["weight"] for v in variants}
    if got != weights:
        raise StepFailed(f"weights after the change are {got}, wanted {weights}")
    unauthorized = httpx.get(f"{admin_url}/admin/routes", timeout=10).status_code
    if unauthorized != 401:
        raise StepFailed(f"the admin API without a token answered {unauthorized}, wanted 401")
    return {"version_after": resp.json()["version"], "weights": got}
