"""docker-compose.yml against the compose specification's JSON schema (as vendored in the
check-jsonschema package; nothing is downloaded), then the properties the design relies on."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import jsonschema
import pytest

from gateway.config import parse_config
from tests.deploy.support import COMPOSE_FILE, ROOT, load_yaml


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    return json.loads(vendored.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def test_compose_file_matches_the_compose_specification(
    schema: dict[str, Any], compose: dict[str, Any]
) -> None:
    jsonschema.validate(compose, schema, cls=jsonschema.Draft7Validator)


def test_the_schema_rejects_a_wrong_field(schema: dict[str, Any], compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["gateway"]["healthcheck"]["intervall"] = "10s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft7Validator)


def test_services_are_healthchecked_and_started_in_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"torchserve", "gateway", "prometheus", "grafana"}
    for name, svc in services.items():
        test = svc["healthcheck"]["test"]
        assert test[0] == "CMD" and any("http://127.0.0.1:" in part for part in test), name
    assert "http://127.0.0.1:8080/ping" in services["torchserve"]["healthcheck"]["test"]
    assert "http://127.0.0.1:8000/v2/health/ready" in services["gateway"]["healthcheck"]["test"]
    assert "grpc://127.0.0.1:9000" in services["gateway"]["healthcheck"]["test"]
    order = {"gateway": "torchserve", "prometheus": "gateway", "grafana": "prometheus"}
    for svc, dep in order.items():
        assert services[svc]["depends_on"][dep]["condition"] == "service_healthy"


def test_torchserve_stays_on_the_internal_network(compose: dict[str, Any]) -> None:
    ts = compose["services"]["torchserve"]
    assert "ports" not in ts
    assert ts["networks"] == ["backend"]
    assert compose["networks"]["backend"]["internal"] is True
    assert "--host=0.0.0.0" in ts["command"]
    for svc in compose["services"].values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port} is published beyond the loopback"


def with_defaults(text: str) -> str:
    """``${VAR:-default}`` as compose reads it with VAR unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)


def test_published_ports_default_to_the_documented_ones(compose: dict[str, Any]) -> None:
    published = {
        with_defaults(p) for svc in compose["services"].values() for p in svc.get("ports", [])
    }
    assert published == {f"127.0.0.1:{n}:{n}" for n in ("8000", "9000", "8001", "9090", "3000")}
    text = COMPOSE_FILE.read_text()
    for var in ("SERVEGATE_HTTP_PORT", "SERVEGATE_GRPC_PORT", "SERVEGATE_ADMIN_PORT"):
        assert f"${{{var}:-" in text
    # Compose v1.29 (Debian's docker-compose) refuses a top-level `name:`.
    assert "name" not in compose


def test_one_init_per_container(compose: dict[str, Any]) -> None:
    # The servegate image's entry point is tini: compose's `init: true` would put a second init
    # above it, and tini then warns at every start that it cannot reap zombies.
    for name in ("torchserve", "gateway"):
        assert not compose["services"][name].get("init"), name
    assert '"tini", "--"' in (ROOT / "deploy/docker/Dockerfile").read_text()


def test_no_default_secrets(compose: dict[str, Any]) -> None:
    env = compose["services"]["gateway"]["environment"]
    assert env["SERVEGATE_GATEWAY_ADMIN_TOKEN"].startswith("${SERVEGATE_ADMIN_TOKEN:?")
    assert compose["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith(
        "${GRAFANA_ADMIN_PASSWORD:?"
    )
    text = COMPOSE_FILE.read_text()
    for secret in ("SERVEGATE_ADMIN_TOKEN", "GRAFANA_ADMIN_PASSWORD"):
        assert f"{secret}:-" not in text and f"{secret}-" not in text


def test_gateway_gets_torchserve_keys_config_and_archives(compose: dict[str, Any]) -> None:
    ts, gw = compose["services"]["torchserve"], compose["services"]["gateway"]
    assert "torchserve-state:/var/lib/servegate/torchserve" in ts["volumes"]
    assert "torchserve-state:/var/lib/servegate/torchserve:ro" in gw["volumes"]
    mounts = [with_defaults(v) for v in gw["volumes"]]
    config_mount = next(v for v in mounts if v.endswith(":/etc/servegate:ro"))  # by default
    config = ROOT / config_mount.split(":")[0] / "gateway.yaml"
    parsed = parse_config(config.read_bytes(), str(config))
    backend = parsed.backends["torchserve"]
    assert str(backend.key_file).startswith("/var/lib/servegate/torchserve/")
    assert backend.inference_url == "http://torchserve:8080"
    assert "--config=/etc/servegate/gateway.yaml" in gw["command"]
