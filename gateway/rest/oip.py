"""Open Inference Protocol v2 over REST (the KServe/Triton "predict protocol, version 2").

Server and model health and metadata come from the gateway's config and the archives'
manifests; ``infer`` bodies must be JSON within the gateway's limits (``gateway.bodies``),
or a JSON header and binary tensors (the binary data extension, ``gateway.rest.binary``),
and are checked for shape (a JSON object whose ``inputs`` are tensor objects named as the
model's metadata names them) and forwarded unchanged, since the TorchServe handler speaks OIP
itself. The answer's ``model_name``/``model_version`` are rewritten to the public route name
and variant version. Every error is ``{"error": "..."}``.

Streaming (``gateway.rest.sse``): ``POST .../generate_stream`` (the path of Triton's generate
extension) takes the same body as ``infer`` and answers Server-Sent Events; so does ``infer``
itself when the request's ``parameters.stream`` is true or it accepts ``text/event-stream``.
Each piece of text is an event ``{"model_name", "model_version", "text_output": "<piece>"}``
(Triton's generate_stream shape), the last one the whole OIP infer response; an error after
the stream began is a last ``event: error`` with ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from gateway import bodies
from gateway.backends import BackendResponse, Payload, TensorSpec
from gateway.config import Variant
from gateway.dataplane import DataPlane
from gateway.errors import BadRequest, GatewayError, PayloadTooLarge
from gateway.rest import binary, sse
from gateway.rest.common import dataplane_of, headers, read_body, request_id
from gateway.streams import Piece

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v2")


def oip_error(exc: GatewayError, rid: str | None = None) -> JSONResponse:
    extra = headers(rid, exc.variant) if rid else {}
    if exc.status == 408:
        extra["Connection"] = "close"  # the rest of a late body is not worth waiting for
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=extra)


@router.get("")
async def server_metadata(request: Request) -> JSONResponse:
    server = dataplane_of(request).server_metadata()
    body = {"name": server.name, "version": server.version, "extensions": list(server.extensions)}
    return JSONResponse(body)


@router.get("/health/live")
async def live() -> JSONResponse:
    return JSONResponse({"live": True})


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    ok = await dataplane_of(request).ready()
    return JSONResponse({"ready": ok}, status_code=200 if ok else 503)


@router.get("/models/{model}")
@router.get("/models/{model}/versions/{version}")
async def model_metadata(request: Request, model: str, version: str | None = None) -> Response:
    try:
        meta = dataplane_of(request).model_metadata(model, version)
    except GatewayError as exc:
        return oip_error(exc)
    return JSONResponse(
        {
            "name": meta.name,
            "versions": meta.versions,
            "platform": meta.platform,
            "inputs": [_tensor(t) for t in meta.inputs],
            "outputs": [_tensor(t) for t in meta.outputs],
        }
    )


@router.get("/models/{model}/ready")
@router.get("/models/{model}/versions/{version}/ready")
async def model_ready(request: Request, model: str, version: str | None = None) -> Response:
    try:
        ok = await dataplane_of(request).model_ready(model, version)
    except GatewayError as exc:
        return oip_error(exc)
    return JSONResponse({"name": model, "ready": ok}, status_code=200 if ok else 503)


@router.post("/models/{model}/infer")
@router.post("/models/{model}/versions/{version}/infer")
async def infer(request: Request, model: str, version: str | None = None) -> Response:
    return await _infer(request, model, version, stream=False)


@router.post("/models/{model}/generate_stream")
@router.post("/models/{model}/versions/{version}/generate_stream")
async def generate_stream(request: Request, model: str, version: str | None = None) -> Response:
    return await _infer(request, model, version, stream=True)


async def _infer(request: Request, model: str, version: str | None, *, stream: bool) -> Response:
    dataplane = dataplane_of(request)
    settings = dataplane.settings
    rid = request_id(request)
    try:
        with dataplane.inference(model, "rest") as call:
            header_length = request.headers.get(binary.HEADER)
            content_type = request.headers.get("content-type")
            if header_length is None:
                bodies.require_oip_json(content_type)
            else:
                bodies.require_oip_binary(content_type)
            body = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
            head, raw = binary.split(body, header_length)
            obj = bodies.parse_json(head, bodies.JsonLimits.of(settings))
            if raw is not None and isinstance(obj, dict):
                binary.inline_inputs(obj, raw)
            request_id_in_body = _check_infer_body(obj)
            call.check_input_names(version, [t["name"] for t in obj["inputs"]])
            default, named = binary.wanted(obj)
            if stream or _stream_asked(obj, request.headers.get("accept")):
                binary.strip_params(obj)  # a stream's answer is events, never binary
                streamed = _with_stream_flag(obj)
                return _EventStream(
                    dataplane, request, model=model, version=version, obj=streamed, rid=rid
                )
            if raw is not None or default or named:
                body = _reencoded(obj, settings.max_body_bytes)
            facts = call.facts(request.headers, lambda: request.cookies, version)
            out = await call.infer(Payload(body, "application/json"), facts)
    except GatewayError as exc:
        return oip_error(exc, rid)
    answer, status = _answer(out.response, model, out.variant, request_id_in_body)
    extra = headers(rid, out.variant.name)
    if status == 200 and (default or named):
        try:
            rendered = binary.render(answer, default, named)
        except (KeyError, TypeError, ValueError, OverflowError):
            log.warning(
                "variant %s answered outputs that do not fit their datatype", out.variant.name
            )
            return JSONResponse({"error": "inference failed"}, status_code=502, headers=extra)
        if rendered is not None:
            extra["Inference-Header-Content-Length"] = str(rendered.header_length)
            return Response(rendered.body, media_type="application/octet-stream", headers=extra)
    return JSONResponse(answer, status_code=status, headers=extra)


def _reencoded(obj: dict[str, Any], limit: int) -> bytes:
    """The body a worker gets for a request that used the binary extension: JSON, with the
    extension's own parameters dropped; 413 when that JSON form is past the body limit (the
    model server takes JSON, so a binary body must fit the limit as JSON too)."""
    binary.strip_params(obj)
    body = json.dumps(obj, separators=(",", ":")).encode()
    if len(body) > limit:
        raise PayloadTooLarge(
            f"the request is {len(body)} bytes as the JSON the model server takes, "
            f"past the limit of {limit}; send fewer or smaller tensors"
        )
    return body


def _stream_asked(obj: dict[str, Any], accept: str | None) -> bool:
    params = obj.get("parameters")
    flag = params.get("stream") if isinstance(params, dict) else None
    return flag is True or (flag is None and sse.wants_events(accept))


def _with_stream_flag(obj: dict[str, Any]) -> dict[str, Any]:
    params = obj.get("parameters")
    return {**obj, "parameters": {**(params if isinstance(params, dict) else {}), "stream": True}}


class _EventStream(Response):
    """The streamed answer, run when Starlette sends the response: routing, forwarding and
    relaying happen here, with an error before the stream began still a JSON error."""

    def __init__(
        self,
        dataplane: DataPlane,
        request: Request,
        *,
        model: str,
        version: str | None,
        obj: dict[str, Any],
        rid: str,
    ) -> None:
        super().__init__()
        self.dataplane, self.model, self.version, self.obj = dataplane, model, version, obj
        self.request_headers: Mapping[str, str] = request.headers
        self.cookies = request.cookies
        self.rid = rid

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        payload = Payload(json.dumps(self.obj).encode(), "application/json")
        try:
            with self.dataplane.inference(self.model, "rest") as call:
                facts = call.facts(self.request_headers, lambda: self.cookies, self.version)
                async with call.stream(payload, facts) as stream:
                    variant = stream.variant
                    if stream.refusal is not None:
                        answer, status = _answer(stream.refusal, self.model, variant, None)
                        refused = JSONResponse(
                            answer, status_code=status, headers=headers(self.rid, variant.name)
                        )
                        await refused(scope, receive, send)
                        return
                    events = _Events(self.model, variant, self.obj.get("id"))
                    head = sse.head(self.rid, variant.name)
                    await sse.relay(send, receive, stream.pieces, events, head)
        except GatewayError as exc:
            await oip_error(exc, self.rid)(scope, receive, send)


class _Events:
    def __init__(self, model: str, variant: Variant, rid_in_body: Any) -> None:
        self.model, self.variant, self.rid_in_body = model, variant, rid_in_body

    def token(self, piece: Piece) -> bytes:
        body = {
            "model_name": self.model,
            "model_version": self.variant.version,
            "text_output": piece.text,
        }
        return sse.event(json.dumps(body).encode())

    def answer(self, piece: Piece) -> bytes:
        resp = BackendResponse(200, piece.body, "application/json")
        answer, _ = _answer(resp, self.model, self.variant, self.rid_in_body)
        return sse.event(json.dumps(answer).encode(), "error" if "error" in answer else None)

    def error(self, status: int, message: str) -> bytes:
        return sse.event(json.dumps({"error": message}).encode(), "error")


def _tensor(t: TensorSpec) -> dict[str, Any]:
    return {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}


def _check_infer_body(obj: Any) -> Any:
    """A JSON object with a non-empty list of tensor objects under ``inputs``."""
    if not isinstance(obj, dict):
        raise BadRequest("request body must be a JSON object")
    inputs = obj.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest('"inputs" must be a non-empty list of tensors')
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise BadRequest(f"inputs[{i}] must be a tensor object")
        for field, kind in (("name", str), ("datatype", str), ("shape", list), ("data", list)):
            if not isinstance(tensor.get(field), kind):
                raise BadRequest(f"inputs[{i}].{field} is missing or has the wrong type")
    return obj.get("id")


def _answer(
    resp: BackendResponse, model: str, variant: Variant, rid_in_body: Any
) -> tuple[dict[str, Any], int]:
    try:
        body = json.loads(resp.body)
    except ValueError:
        body = None
    if resp.status == 200 and isinstance(body, dict) and "outputs" in body:
        body["model_name"] = model
        body["model_version"] = variant.version
        if rid_in_body is not None:
            body["id"] = rid_in_body
        return body, 200
    status = resp.status if resp.status >= 400 else 502
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return {"error": body["error"]}, status
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return {"error": body["message"]}, status  # TorchServe's own error shape
    return {"error": "inference failed"}, status
