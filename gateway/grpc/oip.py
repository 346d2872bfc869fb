"""The Open Inference Protocol v2 gRPC service, ``inference.GRPCInferenceService``.

Health and metadata come from the gateway's config and the archives' manifests, as for OIP
REST. ``ModelInfer`` turns the request into the OIP JSON body (``tensors.request_json``) and
sends it through the data plane exactly like ``POST /v2/models/{m}/infer``; the answer's
``model_name``/``model_version``/``id`` are the public route name, the variant's version and
the client's id.
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from gateway.backends import Payload
from gateway.dataplane import DataPlane, Outcome
from gateway.errors import BadRequest
from gateway.grpc import common, status, tensors
from gateway.grpc.stubs import grpc_predict_v2_pb2 as pb


class OipService:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    @status.rpc
    async def ServerLive(
        self, request: Any, context: grpc.aio.ServicerContext[Any, pb.ServerLiveResponse]
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @status.rpc
    async def ServerReady(
        self, request: Any, context: grpc.aio.ServicerContext[Any, pb.ServerReadyResponse]
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=await self.dataplane.ready())

    @status.rpc
    async def ServerMetadata(
        self, request: Any, context: grpc.aio.ServicerContext[Any, pb.ServerMetadataResponse]
    ) -> pb.ServerMetadataResponse:
        server = self.dataplane.server_metadata()
        return pb.ServerMetadataResponse(
            name=server.name, version=server.version, extensions=server.extensions
        )

    @status.rpc
    async def ModelReady(
        self,
        request: pb.ModelReadyRequest,
        context: grpc.aio.ServicerContext[pb.ModelReadyRequest, pb.ModelReadyResponse],
    ) -> pb.ModelReadyResponse:
        ready = await self.dataplane.model_ready(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=ready)

    @status.rpc
    async def ModelMetadata(
        self,
        request: pb.ModelMetadataRequest,
        context: grpc.aio.ServicerContext[pb.ModelMetadataRequest, pb.ModelMetadataResponse],
    ) -> pb.ModelMetadataResponse:
        meta = self.dataplane.model_metadata(request.name, request.version or None)
        spec = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta.name,
            versions=meta.versions,
            platform=meta.platform,
            inputs=[spec(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.inputs],
            outputs=[spec(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.outputs],
        )

    @status.rpc
    async def ModelInfer(
        self,
        request: pb.ModelInferRequest,
        context: grpc.aio.ServicerContext[pb.ModelInferRequest, pb.ModelInferResponse],
    ) -> pb.ModelInferResponse:
        md = common.Metadata(context)
        version = request.model_version or None
        with self.dataplane.inference(request.model_name, "grpc") as call:
            call.check_input_names(version, [t.name for t in request.inputs])
            obj = tensors.request_json(request)
            if obj.get("parameters", {}).get("stream") is True:
                raise BadRequest(
                    "OIP gRPC answers in one piece: stream over REST "
                    "(POST /v2/models/{model}/generate_stream) or TorchServe's StreamPredictions"
                )
            body = json.dumps(obj, separators=(",", ":")).encode()
            facts = call.facts(md, md.cookies, version)
            payload = Payload(body, "application/json")
            out = await call.infer(payload, facts, common.deadline(context))
        answer = _answer(out, raw=bool(request.raw_input_contents))
        answer.model_name = request.model_name
        answer.model_version = out.variant.version
        answer.id = request.id
        await context.send_initial_metadata(
            common.answer_metadata(md.request_id(), out.variant.name)
        )
        return answer


def _answer(out: Outcome, *, raw: bool) -> pb.ModelInferResponse:
    """The gRPC answer, or the worker's refusal as the matching ``GatewayError``."""
    resp = out.response
    if resp.status == 200:
        try:
            body = json.loads(resp.body)
            return tensors.infer_response(body, raw=raw)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass
    raise status.refusal(resp, out.variant.name)
