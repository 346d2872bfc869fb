"""TorchServe's gRPC inference API, ``org.pytorch.serve.grpc.inference.InferenceAPIsService``,
so an existing TorchServe gRPC client works by changing only its address.

``PredictionsRequest.input`` is TorchServe's map of request parameters. One entry is sent as
the raw HTTP body (``application/octet-stream``: the worker receives the same bytes it would
from TorchServe's own gRPC port); several are sent as ``multipart/form-data`` file parts, which
TorchServe's HTTP API turns into the same named parameters. The answer's bytes come back
unchanged in ``prediction``; a worker's error status becomes the matching gRPC code.

``StreamPredictions`` relays the answer as it comes (``DataPlane``'s ``stream``, as for REST
Server-Sent Events): a streaming handler's pieces (``{"token": "..."}`` lines, then the whole
answer, one JSON line per message, without its newline) each in their own message as the
worker sends them; any other answer in one message, as ``Predictions`` gives it. A refusal
before the first message, or an error after it, ends the call with its code. A client that
cancels stops the generation upstream (``gateway.relay``).

``StreamPredictions2`` answers each request of the stream in order, echoing ``sequence_id``;
the stream is routed once, on its first request, and stays on that variant; a failed request
is reported in that response's ``status`` and the stream goes on.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.rpc import status_pb2

from gateway import bodies
from gateway.backends import Payload
from gateway.dataplane import DataPlane, Outcome
from gateway.errors import BadRequest, GatewayError
from gateway.grpc import common, status
from gateway.grpc.stubs import inference_pb2 as pb
from gateway.routing import RequestFacts
from gateway.streams import Kind

_PART_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class TorchServeService:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane
        self.limits = bodies.JsonLimits.of(dataplane.settings)  # the process's settings

    @status.rpc
    async def Ping(
        self, request: Any, context: grpc.aio.ServicerContext[Any, pb.TorchServeHealthResponse]
    ) -> pb.TorchServeHealthResponse:
        return pb.TorchServeHealthResponse(health=_health(await self.dataplane.ready()))

    @status.rpc
    async def Predictions(
        self,
        request: pb.PredictionsRequest,
        context: grpc.aio.ServicerContext[pb.PredictionsRequest, pb.PredictionResponse],
    ) -> pb.PredictionResponse:
        md = common.Metadata(context)
        out = await self._forward(request, context, md)
        await context.send_initial_metadata(
            common.answer_metadata(md.request_id(), out.variant.name)
        )
        return pb.PredictionResponse(prediction=out.response.body)

    @status.rpc
    async def StreamPredictions(
        self,
        request: pb.PredictionsRequest,
        context: grpc.aio.ServicerContext[pb.PredictionsRequest, pb.PredictionResponse],
    ) -> AsyncIterator[pb.PredictionResponse]:
        md = common.Metadata(context)
        with self.dataplane.inference(request.model_name, "grpc") as call:
            payload = self._payload(request, stream=True)
            facts = call.facts(md, md.cookies, request.model_version or None)
            async with call.stream(payload, facts, common.deadline(context)) as stream:
                variant = stream.variant.name
                if stream.refusal is not None:
                    raise status.refusal(stream.refusal, variant)
                await context.send_initial_metadata(
                    common.answer_metadata(md.request_id(), variant)
                )
                async for piece in stream.pieces:
                    if piece.kind is Kind.ERROR:
                        raise status.failed_piece(piece, variant)
                    yield pb.PredictionResponse(prediction=piece.body)

    def _payload(self, request: pb.PredictionsRequest, *, stream: bool = False) -> Payload:
        payload = payload_of(request.input)
        for value in request.input.values():
            body = bytes(value)
            bodies.check_predictions_body(body, "raw", self.limits)
            if not stream and bodies.streamed_body(body, "raw", False, self.limits) is not None:
                # TorchServe's unary gRPC answer carries only the first piece of a stream and
                # its worker was seen stuck after it: a stream has one way in here.
                raise BadRequest('"stream": true needs StreamPredictions')
        return payload

    @status.rpc
    async def StreamPredictions2(
        self,
        requests: AsyncIterator[pb.PredictionsRequest],
        context: grpc.aio.ServicerContext[pb.PredictionsRequest, pb.PredictionResponse],
    ) -> AsyncIterator[pb.PredictionResponse]:
        md = common.Metadata(context)
        rid = md.request_id()
        pinned: RequestFacts | None = None
        async for request in requests:
            seq = request.sequence_id if request.HasField("sequence_id") else None
            try:
                out = await self._forward(request, context, md, pinned)
            except GatewayError as exc:  # reported in this answer; the stream goes on
                code = status.code_for(exc.status).value[0]
                yield pb.PredictionResponse(
                    sequence_id=seq, status=status_pb2.Status(code=code, message=exc.message)
                )
                continue
            if pinned is None:
                pinned = RequestFacts(pinned_variant=out.variant.name)
                await context.send_initial_metadata(common.answer_metadata(rid, out.variant.name))
            yield pb.PredictionResponse(prediction=out.response.body, sequence_id=seq)

    async def _forward(
        self,
        request: pb.PredictionsRequest,
        context: grpc.aio.ServicerContext[pb.PredictionsRequest, pb.PredictionResponse],
        md: common.Metadata,
        facts: RequestFacts | None = None,
    ) -> Outcome:
        """Route and forward one request; a worker's refusal is raised as a ``GatewayError``."""
        with self.dataplane.inference(request.model_name, "grpc") as call:
            payload = self._payload(request)
            if facts is None:
                facts = call.facts(md, md.cookies, request.model_version or None)
            out = await call.infer(payload, facts, common.deadline(context))
        if out.response.status != 200:
            raise status.refusal(out.response, out.variant.name)
        return out


def payload_of(inputs: Any) -> Payload:
    if not inputs:
        raise BadRequest("input is empty: send the request body as input['data']")
    if len(inputs) == 1:
        (body,) = inputs.values()
        return Payload(bytes(body), "application/octet-stream", inputs)
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in inputs.items():
        if not _PART_NAME.match(name):
            raise BadRequest(f"input names are 1-64 of [A-Za-z0-9_.-], got {name[:64]!r}")
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + bytes(value) + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return Payload(body, f"multipart/form-data; boundary={boundary}", inputs)


def _health(ok: bool) -> str:
    # TorchServe's Ping answers its /ping JSON as a string.
    return '{\n  "status": "Healthy"\n}' if ok else '{\n  "status": "Unhealthy"\n}'
