"""gRPC clients for the tests: real grpcio channels to the gateway and to TorchServe directly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import grpc

from gateway.grpc.stubs import grpc_predict_v2_pb2 as oip_pb
from gateway.grpc.stubs import grpc_predict_v2_pb2_grpc as oip_grpc
from gateway.grpc.stubs import inference_pb2 as ts_pb
from gateway.grpc.stubs import inference_pb2_grpc as ts_grpc
from tests.gateway.support import MLP_ROW
from tests.support.tsclient import TorchServeClient

MLP_BODY = json.dumps({"inputs": [MLP_ROW]}).encode()
Metadata = Sequence[tuple[str, str]]


@contextmanager
def channel(address: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(address) as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        yield ch


def torchserve_stub(ch: grpc.Channel) -> Any:
    return ts_grpc.InferenceAPIsServiceStub(ch)


def oip_stub(ch: grpc.Channel) -> Any:
    return oip_grpc.GRPCInferenceServiceStub(ch)


def direct_address(ts: TorchServeClient) -> str:
    return f"{ts.settings.host}:{ts.settings.ports.grpc_inference}"


def direct_auth(ts: TorchServeClient) -> Metadata:
    """TorchServe's own gRPC port wants the inference key as metadata."""
    return (("authorization", f"Bearer {ts.keys.inference.key}"),)


def predictions(model: str, body: bytes = MLP_BODY, version: str = "") -> Any:
    return ts_pb.PredictionsRequest(model_name=model, model_version=version, input={"data": body})


def mlp_tensor(rows: list[list[float]]) -> Any:
    tensor = oip_pb.ModelInferRequest.InferInputTensor(
        name="features", datatype="FP32", shape=[len(rows), 16]
    )
    tensor.contents.fp32_contents.extend(v for row in rows for v in row)
    return tensor


def code_of(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    raise AssertionError("the call succeeded")


def variant_of(call: Any) -> str | None:
    return dict(call.initial_metadata()).get("x-servegate-variant")


def fire(
    address: str,
    n: int,
    metadata_for: Callable[[int], Metadata] | None = None,
    model: str = "mlp",
    concurrency: int = 64,
) -> list[tuple[grpc.StatusCode, str | None]]:
    """``n`` Predictions calls, ``concurrency`` at a time on one aio channel: (code, variant)."""

    async def main() -> list[tuple[grpc.StatusCode, str | None]]:
        sem = asyncio.Semaphore(concurrency)
        async with grpc.aio.insecure_channel(address) as ch:
            stub = ts_grpc.InferenceAPIsServiceStub(ch)

            async def one(i: int) -> tuple[grpc.StatusCode, str | None]:
                md = metadata_for(i) if metadata_for else ()
                async with sem:
                    call = stub.Predictions(predictions(model), metadata=md, timeout=60)
                    try:
                        await call
                    except grpc.aio.AioRpcError as exc:
                        return exc.code(), None
                    return grpc.StatusCode.OK, dict(await call.initial_metadata()).get(
                        "x-servegate-variant"
                    )

            return list(await asyncio.gather(*(one(i) for i in range(n))))

    return asyncio.run(main())
