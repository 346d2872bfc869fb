"""Admin API for canary analysis: ``GET /admin/canary[/{route}]`` and
``POST /admin/canary/{route}/{start|pause|resume|promote|abort}``, bearer token like every
admin call, audited with the caller as ``who``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.admin.api import (
    MAX_ADMIN_BODY,
    actor,
    admin_error,
    refuse_if_draining,
    refuse_unknown_fields,
    require_token,
)
from gateway.errors import AnalysisRunning, BadRequest, GatewayError, ModelNotFound
from gateway.rest.common import gateway_of, read_body
from gateway.state import Gateway

router = APIRouter(prefix="/admin/canary", dependencies=[Depends(require_token)])
ACTIONS = ("start", "pause", "resume", "promote", "abort")


def canary_json(gw: Gateway, name: str) -> dict[str, Any]:
    """A route's analysis as the status page and the CLI show it."""
    route = gw.table.loaded.config.routes.get(name)
    controller = gw.canary
    if route is None or route.analysis is None or controller is None:
        return {"route": name, "configured": False}
    status = controller.status(name)
    analysis = route.analysis
    return {
        "route": name,
        "configured": True,
        "running_here": controller.enabled,
        "canary": analysis.canary,
        "stable": route.stable.name,
        "steps": list(analysis.weights()),
        "interval_s": analysis.interval_s,
        "threshold": analysis.threshold,
        "source": analysis.metrics.source,
        "weights": {v.name: v.weight for v in route.variants},
        **status.model_dump(mode="json"),
    }


@router.get("")
async def list_analyses(request: Request) -> JSONResponse:
    gw = gateway_of(request)
    names = [n for n, r in gw.table.loaded.config.routes.items() if r.analysis is not None]
    return JSONResponse({"routes": {n: canary_json(gw, n) for n in names}})


@router.get("/{route}")
async def get_analysis(request: Request, route: str) -> JSONResponse:
    gw = gateway_of(request)
    if route not in gw.table.loaded.config.routes:
        return admin_error(ModelNotFound(f"route not found: {route}"))
    return JSONResponse(canary_json(gw, route))


@router.post("/{route}/{action}")
async def act(request: Request, route: str, action: str) -> JSONResponse:
    gw = gateway_of(request)
    controller = gw.canary
    try:
        if action not in ACTIONS:
            raise ModelNotFound(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        _no_fields(await read_body(request, MAX_ADMIN_BODY))
        if controller is None:
            raise AnalysisRunning("canary analysis is not available in this gateway")
        async with gw.admin_lock:
            refuse_if_draining(gw)
            getattr(controller, action)(route, actor(request))
    except GatewayError as exc:
        return admin_error(exc)
    return JSONResponse(canary_json(gw, route))


def _no_fields(body: bytes) -> None:
    """An action takes no body; an empty one or ``{}`` is accepted, anything else refused."""
    if not body.strip():
        return
    try:
        obj = json.loads(body)
    except ValueError:
        raise BadRequest("this action takes no body") from None
    if not isinstance(obj, dict):
        raise BadRequest("this action takes no body")
    refuse_unknown_fields(obj, set())
