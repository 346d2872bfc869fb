"""``PUT /admin/routes/{route}/variants/{variant}``: how a new model version enters a route and
how a rollback puts the variant back; on a small real HTTP backend (no TorchServe needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.config import audit
from tests.gateway.support import run_gateway, variant, write_config
from tests.support.stub_backend import StubBackend, stub_backend

ANALYSIS = {
    "canary": "canary",
    "interval_s": 30,
    "steps": [50, 100],
    "checks": {"error_rate": {"max": 0.5}},
}


@pytest.fixture
def stub() -> Iterator[StubBackend]:
    with stub_backend() as backend:
        yield backend


@pytest.fixture
def config(tmp_path: Path, stub: StubBackend) -> Path:
    route = {
        "variants": [
            variant("stable", "m", 100, backend="s"),
            variant("canary", "m", 0, "s", version="1.1"),
        ],
        "analysis": ANALYSIS,
    }
    return write_config(tmp_path / "gateway.yaml", {"s": stub.config()}, {"m": route})


def put(a: httpx.Client, auth: dict[str, str], body: object, **headers: str) -> httpx.Response:
    version = a.get("/admin/routes/m", headers=auth).headers["etag"]
    return a.put(
        "/admin/routes/m/variants/canary",
        content=json.dumps(body),
        headers={**auth, "If-Match": version, **headers},
    )


def test_a_new_version_enters_and_leaves_the_route_audited(config: Path) -> None:
    with run_gateway(config) as gw, gw.admin() as a:
        before = a.get("/admin/routes/m", headers=gw.auth).json()["route"]
        entered = put(a, gw.auth, {"version": "2.0", "reason": "rollout m 2.0"})
        assert entered.status_code == 200, entered.text
        canary = entered.json()["route"]["variants"][1]
        assert (canary["model"], canary["version"], canary["weight"]) == ("m", "2.0", 0)
        # The data plane reaches it by version at once (weight 0: only when asked for).
        with gw.client() as c:
            answer = c.post("/predictions/m/2.0", json={"n": 1})
        assert answer.status_code == 200 and answer.headers["x-servegate-variant"] == "canary"
        back = put(a, gw.auth, {"version": "1.1", "weight": 0})
        assert back.status_code == 200, back.text
        after = a.get("/admin/routes/m", headers=gw.auth).json()["route"]
    assert after == before
    assert config.read_text().startswith("# written by a test\n")  # surgical edits
    entries = audit.read(gw.settings.audit_path())
    assert [(e["action"], e["reason"]) for e in entries] == [
        ("set_variant", "canary: s/m/1.1 at 0% -> s/m/2.0 at 0%; rollout m 2.0"),
        ("set_variant", "canary: s/m/2.0 at 0% -> s/m/1.1 at 0%"),
    ]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({}, 400, "give at least one of"),
        ({"models": "x"}, 400, "unknown field(s) ['models']"),
        ({"weight": "10"}, 400, "weight must be an integer"),
        ({"version": 2}, 400, "must be strings"),
        ({"version": "../2"}, 400, "invalid config"),
        ({"backend": "nowhere"}, 400, "names backend 'nowhere'"),
        ({"weight": 10}, 400, "weights must sum to 100"),
        ({"version": "2.0", "reason": "a\nb"}, 400, "one printable line"),
    ],
)
def test_bad_changes_are_refused_and_nothing_is_written(
    config: Path, body: object, status: int, says: str
) -> None:
    before = config.read_bytes()
    with run_gateway(config) as gw, gw.admin() as a:
        resp = put(a, gw.auth, body)
    assert resp.status_code == status, resp.text
    assert says in resp.json()["error"]
    assert config.read_bytes() == before
    assert audit.read(gw.settings.audit_path()) == []


def test_refused_while_an_analysis_runs_and_without_if_match(config: Path) -> None:
    with run_gateway(config) as gw, gw.admin() as a:
        no_match = a.put("/admin/routes/m/variants/canary", json={"version": "2"}, headers=gw.auth)
        unknown = a.put(
            "/admin/routes/m/variants/nope",
            json={"version": "2"},
            headers={**gw.auth, "If-Match": "x"},
        )
        assert a.post("/admin/canary/m/start", headers=gw.auth).status_code == 200
        running = put(a, gw.auth, {"version": "3.0"})
    assert no_match.status_code == 428
    assert unknown.status_code == 404
    assert running.status_code == 409 and "canary abort m" in running.json()["error"]
    assert yaml.safe_load(config.read_text())["routes"]["m"]["variants"][1]["version"] == "1.1"
