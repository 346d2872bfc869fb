"""The Open Inference Protocol v2 gRPC service, ``inference.GRPCInferenceService``.

Health and metadata come from the gateway's config and the archives' manifests, as for OIP
REST. ``ModelInfer`` turns the request into the OIP JSON body (``tensors.request_json``) and
sends it through ``dataplane.infer`` exactly like ``POST /v2/models/{m}/infer``; the answer's
``model_name``/``model_version``/``id`` are the public route name, the variant's version and
the client's id.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gateway import dataplane
from gateway.backends import Payload
from gateway.errors import GatewayError
from gateway.grpc import common, tensors
from gateway.grpc.stubs import grpc_predict_v2_pb2 as pb
from gateway.state import Gateway

SERVER_NAME = "servegate"
SERVER_VERSION = "0.1.0"
PLATFORM = "servegate_torchserve"


class OipService:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        backends = self.gw.table.backends.values()
        states = await asyncio.gather(*(b.ready() for b in backends))
        return pb.ServerReadyResponse(ready=all(states))

    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Any
    ) -> pb.ModelReadyResponse:
        try:
            ready = await dataplane.model_ready(
                self.gw, self.gw.table, request.name, request.version or None
            )
        except GatewayError as exc:
            await common.abort(context, exc, common.Metadata(context).request_id())
        return pb.ModelReadyResponse(ready=ready)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Any
    ) -> pb.ModelMetadataResponse:
        table = self.gw.table
        try:
            route, variant = dataplane.resolve(table, request.name, request.version or None)
            sig = table.backends[variant.backend].signature(variant)
        except GatewayError as exc:
            await common.abort(context, exc, common.Metadata(context).request_id())
        spec = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=request.name,
            versions=sorted({v.version for v in route.variants}),
            platform=PLATFORM,
            inputs=[spec(name=t.name, datatype=t.datatype, shape=t.shape) for t in sig.inputs],
            outputs=[spec(name=t.name, datatype=t.datatype, shape=t.shape) for t in sig.outputs],
        )

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Any
    ) -> pb.ModelInferResponse:
        gw, table = self.gw, self.gw.table  # the whole call runs on the table it started with
        md = common.Metadata(context)
        rid = md.request_id()
        model = request.model_name
        try:
            dataplane.lookup(table, model)
            names = [t.name for t in request.inputs]
            dataplane.check_input_names(table, model, request.model_version or None, names)
            body = json.dumps(tensors.request_json(request), separators=(",", ":")).encode()
            facts = common.facts(table, md, model, request.model_version)
            out = await dataplane.infer(
                gw,
                table,
                model,
                facts=facts,
                payload=Payload(body, "application/json"),
                protocol="grpc",
                deadline_s=common.deadline(context),
            )
        except GatewayError as exc:
            if exc.variant is None:
                dataplane.count_refusal(gw, table, model, exc, "grpc")
            await common.abort(context, exc, rid)
        try:
            answer = _answer(out, raw=bool(request.raw_input_contents))
        except GatewayError as exc:
            await common.abort(context, exc, rid)
        answer.model_name = model
        answer.model_version = out.variant.version
        answer.id = request.id
        await context.send_initial_metadata(common.answer_metadata(rid, out.variant.name))
        return answer


def _answer(out: dataplane.Outcome, *, raw: bool) -> pb.ModelInferResponse:
    """The gRPC answer, or the worker's refusal as the matching ``GatewayError``."""
    resp = out.response
    if resp.status == 200:
        try:
            body = json.loads(resp.body)
            return tensors.infer_response(body, raw=raw)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass
    raise common.refusal(resp, out.variant.name)
