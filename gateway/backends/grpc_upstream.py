"""TorchServe's own gRPC inference API as the upstream of TorchServe-gRPC clients.

``Predictions`` from a client of TorchServe's gRPC API goes to TorchServe's gRPC port
(``grpc_address``) instead of its HTTP API when the backend has one: on the H200, TorchServe
answered the same load at 6,010 calls/s over gRPC and 5,190 requests/s over HTTP, so HTTP
capped the gateway at 86% of TorchServe's gRPC. Only ``InferenceAPIsService/Predictions`` is
ever called, on the inference port: no management RPC exists on this channel.

TorchServe 0.12's gRPC frontend answers a worker's error response (our handlers' 400 for bad
input, 413, 507) as an OK call whose ``prediction`` is TorchServe's JSON error
``{"code", "type", "message"}``, and reports a missing model as INTERNAL with a Java exception
name. The first is turned back into the HTTP status it stands for, so a gRPC client gets the same
code as through the HTTP upstream (INVALID_ARGUMENT, ...), and no Java detail; the second is the
variant's fault (``ModelNotServed``: the config names a model this TorchServe does not serve),
answered UNAVAILABLE as through the HTTP upstream, never the client's NOT_FOUND.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import grpc

from gateway.backends.base import BackendResponse
from gateway.errors import BackendTimeout, BackendUnavailable
from gateway.grpc.stubs import inference_pb2, inference_pb2_grpc

log = logging.getLogger(__name__)
JSON = "application/json"
_ERROR_KEYS = {"code", "type", "message"}
_NOT_FOUND = ("ModelNotFoundException", "ModelVersionNotFoundException")


class KeyRejected(Exception):
    """TorchServe refused the inference key (PERMISSION_DENIED)."""


class ModelNotServed(Exception):
    """TorchServe does not serve the model/version asked for (the variant's fault)."""


class GrpcPool:
    """One channel per TorchServe gRPC address, shared by every routing table (a config
    reload builds new backends, not new connections), opened in the serving event loop."""

    def __init__(self) -> None:
        self._stubs: dict[str, Any] = {}
        self._channels: list[Any] = []

    def _stub(self, address: str) -> Any:
        stub = self._stubs.get(address)
        if stub is None:
            channel = grpc.aio.insecure_channel(
                address,
                options=[
                    ("grpc.max_receive_message_length", -1),
                    ("grpc.max_send_message_length", -1),
                    # Straight to TorchServe, as the HTTP client goes: no http_proxy from the
                    # environment between the gateway and its backend.
                    ("grpc.enable_http_proxy", 0),
                ],
            )
            self._channels.append(channel)
            stub = self._stubs[address] = inference_pb2_grpc.InferenceAPIsServiceStub(channel)
        return stub

    async def predict(
        self,
        address: str,
        model: str,
        version: str,
        inputs: Mapping[str, bytes],
        *,
        key: str | None,
        timeout_s: float,
        what: str,
    ) -> BackendResponse:
        request = inference_pb2.PredictionsRequest(
            model_name=model, model_version=version, input=inputs
        )
        metadata = (("authorization", f"Bearer {key}"),) if key is not None else ()
        try:
            reply = await self._stub(address).Predictions(
                request, metadata=metadata, timeout=timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            return _failed(exc, model, what)
        return answer(reply.prediction)

    async def aclose(self) -> None:
        for channel in self._channels:
            await channel.close()
        self._channels.clear()
        self._stubs.clear()


def _failed(exc: grpc.aio.AioRpcError, model: str, what: str) -> BackendResponse:
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.PERMISSION_DENIED:
        raise KeyRejected from None
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        raise BackendTimeout("the model server did not answer in time") from None
    if code == grpc.StatusCode.INTERNAL and any(n in details for n in _NOT_FOUND):
        raise ModelNotServed from None
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return error(413, "RequestTooLarge", "request too large for the model server")
    if code == grpc.StatusCode.INTERNAL:
        log.warning("%s: inference failed: %s", what, (details.splitlines() or [""])[0][:200])
        return error(500, "InternalServerException", "inference failed")
    # UNAVAILABLE (refused, reset, no worker), CANCELLED by the server, anything else.
    log.warning("%s unreachable over gRPC: %s", what, code.name)
    raise BackendUnavailable("the model server is unavailable") from None


def answer(prediction: bytes) -> BackendResponse:
    """The worker's answer, with the status a TorchServe JSON error body stands for."""
    if prediction[:1] == b"{" and b'"code"' in prediction[:64]:
        try:
            body = json.loads(prediction)
        except ValueError:
            body = None
        if isinstance(body, dict) and set(body) == _ERROR_KEYS:
            status = body["code"]
            if isinstance(status, int) and 400 <= status <= 599:
                return BackendResponse(status, prediction, JSON)
    return BackendResponse(200, prediction, JSON)


def error(status: int, kind: str, message: str) -> BackendResponse:
    body = json.dumps({"code": status, "type": kind, "message": message}).encode()
    return BackendResponse(status, body, JSON)
