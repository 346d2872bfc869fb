"""App factories for the two listeners. Both share one ``Gateway`` (table, metrics, client).

The data plane has no docs, OpenAPI or any path beyond the inference APIs; every error,
including unknown paths and wrong methods, is answered in the protocol's own shape.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp

from gateway.admin import api as admin_api
from gateway.admin import canary_api, variants_api
from gateway.dataplane import DataPlane
from gateway.errors import GatewayError
from gateway.rest import oip, predictions
from gateway.rest.hangup import CancelOnHangup
from gateway.state import Gateway
from gateway.status_page import page

log = logging.getLogger(__name__)
NOT_FOUND = "Requested resource is not found, please refer to API document."


def _bare_app(gw: Gateway) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = gw
    return app


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allow(request: Request, status: int) -> dict[str, str] | None:
    """RFC 9110's ``Allow`` for a 405: the methods some route of this path takes, asked of the
    routes themselves (Starlette's own 405 names only the first route that matched the path)."""
    if status != 405:
        return None
    routes = request.app.router.routes
    methods = [
        method
        for method in METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]
    return {"Allow": ", ".join(methods)} if methods else None


def create_data_app(gw: Gateway) -> ASGIApp:
    """``/predictions`` on bare ASGI (the hot path), everything else on FastAPI."""
    app = _bare_app(gw)
    dataplane = DataPlane(gw)
    app.state.dataplane = dataplane
    app.include_router(predictions.router)
    app.include_router(oip.router)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = {404: NOT_FOUND, 405: "Method not allowed"}.get(status, "internal error")
        if status == 500:
            log.exception("unhandled error on %s", request.url.path, exc_info=exc)
        if request.url.path.startswith("/v2"):
            return JSONResponse(
                {"error": message}, status_code=status, headers=allow(request, status)
            )
        kind = {404: "ResourceNotFoundException", 405: "MethodNotAllowedException"}
        body = {"code": status, "type": kind.get(status, "InternalServerError"), "message": message}
        return JSONResponse(body, status_code=status, headers=allow(request, status))

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, http_error)
    return CancelOnHangup(predictions.PredictionsAPI(app, dataplane))


def create_admin_app(gw: Gateway, token: str | None) -> FastAPI:
    """Status page and metrics always; the admin API only when a token is configured."""
    app = _bare_app(gw)
    app.state.admin_token = token
    app.include_router(page.router)
    if token:
        app.include_router(admin_api.router)
        app.include_router(canary_api.router)
        app.include_router(variants_api.router)
    else:
        log.warning("no admin token configured: the admin API is off")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(gw.metrics.exposition()), media_type=CONTENT_TYPE_LATEST)

    async def gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return admin_api.admin_error(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = {404: "not found", 405: "method not allowed"}.get(status, "request refused")
        return JSONResponse({"error": message}, status_code=status, headers=allow(request, status))

    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(HTTPException, http_error)
    return app
