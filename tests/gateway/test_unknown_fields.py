"""Unknown fields are refused, never silently ignored (issue 14, item 6): in every admin body
(400 naming them, nothing applied) and in every field of the config file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from tests.gateway.support import run_gateway
from tests.gateway.test_config import mutated


@pytest.mark.integration
def test_admin_bodies_with_unknown_fields_are_refused(fake_config_path: Path) -> None:
    with run_gateway(fake_config_path) as gw, gw.admin() as a:
        version = a.get("/admin/routes/mlp", headers=gw.auth).headers["etag"]
        write = {**gw.auth, "If-Match": version}
        weights = {"stable": 50, "canary": 50}
        refused: list[tuple[str, Any, str]] = [
            ("/admin/routes/mlp/weights", {"weights": weights, "dry_run": True}, "['dry_run']"),
            ("/admin/routes/mlp/weights", {"weights": {**weights, "shadow": 0}}, "['shadow']"),
        ]
        for path, body, names in refused:
            resp = a.put(path, json=body, headers=write)
            assert resp.status_code == 400 and names in resp.json()["error"], resp.text
        resp = a.post("/admin/canary/mlp/pause", json={"force": True}, headers=gw.auth)
        assert resp.status_code == 400 and "['force']" in resp.json()["error"], resp.text
        # Nothing was applied: same version, same weights.
        after = a.get("/admin/routes/mlp", headers=gw.auth)
        assert after.headers["etag"] == version
        assert [v["weight"] for v in after.json()["route"]["variants"]] == [90, 10]
        # The same body without the stray field is applied.
        resp = a.put("/admin/routes/mlp/weights", json={"weights": weights}, headers=write)
        assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("colour", "red"),
        ("backends.ts.colour", "red"),
        ("routes.m.colour", "red"),
        ("routes.m.variants.1.colour", "red"),
        ("routes.m.sticky", {"header": "X-User", "colour": "red"}),
        ("routes.m.analysis", {"colour": "red"}),
    ],
)
def test_unknown_config_fields_are_refused_by_name(path: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(mutated(path, value))
    assert "colour" in str(info.value) and "Extra inputs are not permitted" in str(info.value)
