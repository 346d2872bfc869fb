"""Admin API: read routes, change weights. Bearer token on every call; writes need ``If-Match``
with the current config version (the digest of ``gateway.yaml``), are validated like a hand
edit, applied at once, persisted atomically and audited. Errors are ``{"error": "..."}``."""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.config import LoadedConfig, Route
from gateway.config.changes import Change, apply_change
from gateway.config.edit import with_weights
from gateway.errors import (
    AnalysisRunning,
    BadRequest,
    Draining,
    GatewayError,
    ModelNotFound,
    PreconditionRequired,
    Unauthorized,
)
from gateway.rest.common import gateway_of, read_body
from gateway.state import Gateway

_ACTOR = re.compile(r"[^A-Za-z0-9@._-]")
MAX_ADMIN_BODY = 64 * 1024


def require_token(request: Request) -> None:
    expected: str = request.app.state.admin_token
    sent = request.headers.get("authorization", "")
    scheme, _, token = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("missing or invalid admin token")


router = APIRouter(prefix="/admin", dependencies=[Depends(require_token)])


def refuse_if_draining(gw: Gateway) -> None:
    """A draining process writes nothing: its successor (or nobody) owns the config now."""
    if gw.draining:
        raise Draining("the gateway is shutting down: send the change again")


def admin_error(exc: GatewayError) -> JSONResponse:
    extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=extra)


def route_json(name: str, route: Route) -> dict[str, Any]:
    return {"name": name, **route.model_dump(mode="json")}


def readiness_json(gw: Gateway, route: Route) -> dict[str, Any]:
    """Per variant: whether its backend serves its model/version (None: not asked yet)."""
    out: dict[str, Any] = {}
    for v in route.variants:
        state = gw.readiness.get(v)
        out[v.name] = state.as_json() if state is not None else {"ready": None}
    return out


@router.get("/routes")
async def list_routes(request: Request) -> JSONResponse:
    gw = gateway_of(request)
    loaded = gw.table.loaded
    routes = {n: route_json(n, r) for n, r in loaded.config.routes.items()}
    readiness = {n: readiness_json(gw, r) for n, r in loaded.config.routes.items()}
    body = {
        "version": loaded.version,
        "file": gw.file_state().as_json(),
        "routes": routes,
        "readiness": readiness,
    }
    return _versioned(body, loaded.version)


@router.get("/routes/{route}")
async def get_route(request: Request, route: str) -> JSONResponse:
    loaded = gateway_of(request).table.loaded
    found = loaded.config.routes.get(route)
    if found is None:
        return admin_error(ModelNotFound(f"route not found: {route}"))
    return _versioned(
        {"version": loaded.version, "route": route_json(route, found)}, loaded.version
    )


@router.put("/routes/{route}/weights")
async def put_weights(request: Request, route: str) -> JSONResponse:
    gw = gateway_of(request)
    try:
        weights = _weights_body(await read_body(request, MAX_ADMIN_BODY))
        async with gw.admin_lock:
            refuse_if_draining(gw)
            loaded = _write_weights(gw, request, route, weights)
    except GatewayError as exc:
        return admin_error(exc)
    body = {"version": loaded.version, "route": route_json(route, loaded.config.routes[route])}
    return _versioned(body, loaded.version)


def _write_weights(
    gw: Gateway, request: Request, route: str, weights: dict[str, int]
) -> LoadedConfig:
    wanted = request.headers.get("if-match")
    if wanted is None:
        raise PreconditionRequired("send If-Match with the config version from GET /admin/routes")
    if route not in gw.table.loaded.config.routes:
        raise ModelNotFound(f"route not found: {route}")
    if gw.canary is not None and gw.canary.holds_weights(route):
        raise AnalysisRunning(
            f"canary analysis is running on {route} and sets its weights; "
            f"`servegate canary pause {route}` or `abort {route}` first"
        )
    change = Change(
        route=route,
        action="set_weights",
        who=actor(request),
        client=request.client.host if request.client else "",
        expected_version=wanted.removeprefix("W/").strip('"'),
    )
    return apply_change(gw, change, lambda raw, _config: with_weights(raw, route, weights))


def actor(request: Request) -> str:
    return _ACTOR.sub("", request.headers.get("x-servegate-actor", ""))[:64] or "admin"


def _weights_body(body: bytes) -> dict[str, int]:
    try:
        obj = json.loads(body)
    except ValueError:
        raise BadRequest('body must be JSON: {"weights": {"<variant>": <int>, ...}}') from None
    if isinstance(obj, dict):
        refuse_unknown_fields(obj, {"weights"})
    weights = obj.get("weights") if isinstance(obj, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(k, str) for k in weights):
        raise BadRequest('body must be {"weights": {"<variant>": <int>, ...}}')
    return weights  # values are validated with the whole config (integers 0-100, sum 100)


def refuse_unknown_fields(obj: dict[str, Any], known: set[str]) -> None:
    """A field the API does not know is refused, never ignored: a typo must not look applied."""
    unknown = sorted(set(obj) - known)
    if unknown:
        takes = f"this body takes only {sorted(known)}" if known else "this action takes no body"
        raise BadRequest(f"unknown field(s) {unknown}: {takes}")


def _versioned(body: dict[str, Any], version: str) -> JSONResponse:
    return JSONResponse(body, headers={"ETag": f'"{version}"'})
