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

from gateway.admin import audit
from gateway.admin.persist import atomic_write, with_weights
from gateway.config import LoadedConfig, Route, version_of
from gateway.errors import (
    BadRequest,
    ConfigReadOnly,
    GatewayError,
    ModelNotFound,
    PreconditionRequired,
    Unauthorized,
    VersionConflict,
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


def admin_error(exc: GatewayError) -> JSONResponse:
    extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=extra)


def route_json(name: str, route: Route) -> dict[str, Any]:
    return {"name": name, **route.model_dump(mode="json")}


@router.get("/routes")
async def list_routes(request: Request) -> JSONResponse:
    loaded = gateway_of(request).table.loaded
    routes = {n: route_json(n, r) for n, r in loaded.config.routes.items()}
    return _versioned({"version": loaded.version, "routes": routes}, loaded.version)


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
            loaded = _write_weights(gw, request, route, weights)
    except GatewayError as exc:
        return admin_error(exc)
    body = {"version": loaded.version, "route": route_json(route, loaded.config.routes[route])}
    return _versioned(body, loaded.version)


def _write_weights(
    gw: Gateway, request: Request, route: str, weights: dict[str, int]
) -> LoadedConfig:
    path = gw.table.loaded.path
    if path is None:
        raise BadRequest("this gateway runs without a config file")
    raw = path.read_bytes()
    current = version_of(raw)
    wanted = request.headers.get("if-match")
    if wanted is None:
        raise PreconditionRequired("send If-Match with the config version from GET /admin/routes")
    if wanted.removeprefix("W/").strip('"') != current:
        raise VersionConflict(f"config version is {current}, not {wanted}; re-read and retry")
    if route not in gw.table.loaded.config.routes:
        raise ModelNotFound(f"route not found: {route}")
    new_raw, config = with_weights(raw, route, weights)
    try:
        atomic_write(path, new_raw)
    except OSError as exc:
        # Nothing was applied: the last good config keeps serving.
        raise ConfigReadOnly(
            f"cannot write {path.name} ({exc.strerror}); it is managed elsewhere "
            "(ConfigMap, read-only mount): change it at its source"
        ) from None
    old_route = gw.table.loaded.config.routes[route]
    loaded = LoadedConfig(config, version_of(new_raw), path)
    gw.apply(loaded)
    actor = _ACTOR.sub("", request.headers.get("x-servegate-actor", ""))[:64] or "admin"
    audit.append(
        gw.settings.audit_path(),
        audit.AuditEntry(
            who=actor,
            client=request.client.host if request.client else "",
            action="set_weights",
            route=route,
            old={v.name: v.weight for v in old_route.variants},
            new={v.name: v.weight for v in config.routes[route].variants},
            version_before=current,
            version_after=loaded.version,
        ),
    )
    return loaded


def _weights_body(body: bytes) -> dict[str, int]:
    try:
        obj = json.loads(body)
    except ValueError:
        raise BadRequest('body must be JSON: {"weights": {"<variant>": <int>, ...}}') from None
    weights = obj.get("weights") if isinstance(obj, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(k, str) for k in weights):
        raise BadRequest('body must be {"weights": {"<variant>": <int>, ...}}')
    return weights  # values are validated with the whole config (integers 0-100, sum 100)


def _versioned(body: dict[str, Any], version: str) -> JSONResponse:
    return JSONResponse(body, headers={"ETag": f'"{version}"'})
