"""A wrong method is 405 with RFC 9110's ``Allow`` naming what the path takes (issue 14, item 5),
on both listeners, in each protocol's error shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.support import run_gateway
from tests.gateway.test_errors import oip_shape, ts_shape

pytestmark = pytest.mark.integration

DATA = [
    ("GET", "/predictions/mlp", "POST"),
    ("PUT", "/predictions/mlp/1.0", "POST"),
    ("POST", "/ping", "GET"),
    ("POST", "/v2", "GET"),
    ("DELETE", "/v2/health/live", "GET"),
    ("POST", "/v2/health/ready", "GET"),
    ("POST", "/v2/models/mlp", "GET"),
    ("POST", "/v2/models/mlp/ready", "GET"),
    ("GET", "/v2/models/mlp/infer", "POST"),
    ("GET", "/v2/models/mlp/versions/1.0/infer", "POST"),
]
ADMIN = [
    ("POST", "/metrics", "GET"),
    ("POST", "/admin/routes", "GET"),
    ("POST", "/admin/routes/mlp/weights", "PUT"),
    ("GET", "/admin/canary/mlp/pause", "POST"),
]


def test_wrong_methods_are_405_with_allow(fake_config_path: Path) -> None:
    with run_gateway(fake_config_path) as gw, gw.client() as c, gw.admin() as admin:
        for method, path, allowed in DATA:
            resp = c.request(method, path)
            shape = oip_shape if path.startswith("/v2") else ts_shape
            shape(resp, 405)
            assert resp.headers.get("allow") == allowed, (method, path, resp.headers)
        for method, path, allowed in ADMIN:
            resp = admin.request(method, path, headers=gw.auth)
            assert resp.status_code == 405 and set(resp.json()) == {"error"}, (path, resp.text)
            assert resp.headers.get("allow") == allowed, (method, path, resp.headers)
