"""TorchServe-compatible inference API: ``POST /predictions/{model}[/{version}]``, ``GET /ping``.

Bodies go to TorchServe unchanged and its answer comes back unchanged (status, body, content
type), so an existing TorchServe client works by changing only its URL. Errors the gateway
raises use TorchServe's JSON error shape ``{"code", "type", "message"}``.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway import dataplane
from gateway.backends import Payload
from gateway.errors import GatewayError
from gateway.rest.common import facts, gateway_of, headers, read_body, request_id

router = APIRouter()


def torchserve_error(exc: GatewayError, rid: str) -> JSONResponse:
    body = {"code": exc.status, "type": exc.kind, "message": exc.message}
    return JSONResponse(body, status_code=exc.status, headers=headers(rid, exc.variant))


@router.post("/predictions/{model}")
async def predict(request: Request, model: str) -> Response:
    return await _predict(request, model, None)


@router.post("/predictions/{model}/{version}")
async def predict_version(request: Request, model: str, version: str) -> Response:
    return await _predict(request, model, version)


async def _predict(request: Request, model: str, version: str | None) -> Response:
    gw = gateway_of(request)
    table = gw.table  # the whole request runs on the table it started with
    rid = request_id(request)
    try:
        dataplane.lookup(table, model)
        body = await read_body(request, gw.settings.max_body_bytes)
        payload = Payload(body, request.headers.get("content-type"))
        facts_ = facts(table, request, model, version)
        out = await dataplane.infer(gw, table, model, facts=facts_, payload=payload)
    except GatewayError as exc:
        if exc.variant is None:
            dataplane.count_refusal(gw, table, model, exc)
        return torchserve_error(exc, rid)
    return Response(out.response.body, status_code=out.response.status,
                    media_type=out.response.content_type,
                    headers=headers(rid, out.variant.name))  # fmt: skip


@router.get("/ping")
async def ping(request: Request) -> Response:
    gw = gateway_of(request)
    states = await asyncio.gather(*(b.ready() for b in gw.table.backends.values()))
    if all(states):
        return JSONResponse({"status": "Healthy"})
    return JSONResponse({"status": "Unhealthy"}, status_code=500)
