"""Admin API: point a variant at another model or version, ``PUT /admin/routes/{route}/variants/
{variant}`` with ``{"backend"?, "model"?, "version"?, "weight"?, "reason"?}`` and ``If-Match``.

This is how a new model version enters a route (``servegate rollout`` puts it in the route's
canary variant at weight 0, then lets the canary analysis move traffic) and how a rollback puts
the variant back exactly as it was. Like a weight change it is validated as a whole config
(a variant brought in that its backend says it does not serve is refused), written back to
``gateway.yaml`` with its comments, applied at once and audited (``set_variant``, the old and
new target in the reason). Refused while an analysis runs on the route: the run judges the
variant it started with.
"""

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
    route_json,
)
from gateway.config import LoadedConfig, Variant
from gateway.config.changes import Change, apply_change
from gateway.config.edit import with_fields
from gateway.errors import (
    AnalysisRunning,
    BadRequest,
    GatewayError,
    ModelNotFound,
    PreconditionRequired,
)
from gateway.rest.common import gateway_of, read_body
from gateway.state import Gateway

router = APIRouter(prefix="/admin/routes", dependencies=[Depends(require_token)])
FIELDS = ("backend", "model", "version", "weight")


@router.put("/{route}/variants/{name}")
async def put_variant(request: Request, route: str, name: str) -> JSONResponse:
    gw = gateway_of(request)
    try:
        fields, reason = _body(await read_body(request, MAX_ADMIN_BODY))
        async with gw.admin_lock:
            refuse_if_draining(gw)
            loaded = _write(gw, request, route=route, name=name, fields=fields, reason=reason)
    except GatewayError as exc:
        return admin_error(exc)
    body = {"version": loaded.version, "route": route_json(route, loaded.config.routes[route])}
    return JSONResponse(body, headers={"ETag": f'"{loaded.version}"'})


def _write(
    gw: Gateway,
    request: Request,
    *,
    route: str,
    name: str,
    fields: dict[str, str | int],
    reason: str,
) -> LoadedConfig:
    wanted = request.headers.get("if-match")
    if wanted is None:
        raise PreconditionRequired("send If-Match with the config version from GET /admin/routes")
    current = gw.table.loaded.config.routes.get(route)
    if current is None:
        raise ModelNotFound(f"route not found: {route}")
    before = current.variant(name)
    if before is None:
        raise ModelNotFound(f"variant not found: {route}/{name}")
    controller = gw.canary
    if controller is not None and controller.status(route).phase != "idle":
        raise AnalysisRunning(
            f"a canary analysis run is {controller.status(route).phase} on {route}; it judges "
            f"the variant it started with: `servegate canary abort {route}` first"
        )
    after = before.model_copy(update=fields)
    change = Change(
        route=route,
        action="set_variant",
        who=actor(request),
        client=request.client.host if request.client else "",
        reason=f"{name}: {_target(before)} -> {_target(after)}" + (f"; {reason}" if reason else ""),
        expected_version=wanted.removeprefix("W/").strip('"'),
    )
    return apply_change(gw, change, lambda raw, _config: with_fields(raw, route, {name: fields}))


def _target(v: Variant) -> str:
    return f"{v.backend}/{v.model}/{v.version} at {v.weight}%"


def _body(body: bytes) -> tuple[dict[str, str | int], str]:
    try:
        obj: Any = json.loads(body)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        raise BadRequest(
            'body must be JSON: {"backend": ..., "model": ..., "version": ..., "weight": ...}'
        )
    refuse_unknown_fields(obj, {*FIELDS, "reason"})
    fields = {k: obj[k] for k in FIELDS if k in obj}
    if not fields:
        raise BadRequest(f"give at least one of {list(FIELDS)}")
    if "weight" in fields and type(fields["weight"]) is not int:
        raise BadRequest("weight must be an integer 0-100")
    if not all(isinstance(fields[k], str) for k in fields if k != "weight"):
        raise BadRequest("backend, model and version must be strings")
    reason = obj.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 200 or not reason.isprintable():
        raise BadRequest("reason must be one printable line of at most 200 characters")
    return fields, reason
