"""``GET /``: a static HTML page whose script polls ``GET /status.json`` every second and shows,
per route, each variant's weight, request rate, error rate and p50/p99 latency over the stats
window (``window_s``, 10 s), the TorchServe model and version it runs (``NAME_<format>``),
variants out of rotation (outlier ejection), and the canary analysis: phase, step, failed
checks, the last checks with their values and bounds, and the reason of the last decision;
whether each variant's backend serves its model, and whether the config file on disk is what
serves (a rejected edit is shown with its reason)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from gateway.admin.api import readiness_json
from gateway.admin.canary_api import canary_json
from gateway.rest.common import gateway_of

router = APIRouter()


@cache
def _asset(name: str) -> str:
    return resources.files("gateway.status_page").joinpath("static", name).read_text()


@router.get("/")
async def page() -> HTMLResponse:
    return HTMLResponse(_asset("index.html"))


@router.get("/static/status.js")
async def script() -> Response:
    return Response(_asset("status.js"), media_type="text/javascript")


@router.get("/status.json")
async def status(request: Request) -> JSONResponse:
    gw = gateway_of(request)
    loaded = gw.table.loaded
    routes: list[dict[str, Any]] = []
    ejected = gw.outliers.snapshot()
    for name, route in loaded.config.routes.items():
        variants = []
        for v in route.variants:
            snap = gw.stats.stats(name, v.name)
            variants.append(
                {
                    "name": v.name,
                    "weight": v.weight,
                    "model": v.model,
                    "version": v.version,
                    "rate": snap.rate,
                    "error_rate": snap.error_rate,
                    "p50_ms": snap.p50_ms,
                    "p99_ms": snap.p99_ms,
                    "total": snap.total,
                    "ejected_s": ejected.get((name, v.name)),
                    "ready": readiness_json(gw, route)[v.name],
                }
            )
        shadow = route.shadow.model_dump() if route.shadow else None
        analysis = canary_json(gw, name) if route.analysis is not None else None
        routes.append({"name": name, "variants": variants, "shadow": shadow, "analysis": analysis})
    file = gw.file_state().as_json()
    return JSONResponse(
        {"version": loaded.version, "window_s": gw.stats.window_s, "file": file, "routes": routes}
    )
