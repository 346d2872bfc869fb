"""TorchServe's inference key expires and TorchServe does not rewrite ``key_file.json`` by
itself: the gateway asks for a new key with the API key (management ``/token``) and retries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from servegate.torchserve.process import TorchServe
from servegate.torchserve.settings import TorchServeSettings
from tests.conftest import fresh_ports
from tests.gateway.support import (
    MLP_ROW,
    run_gateway,
    split_route,
    ts_backend,
    variant,
    wait_for,
    write_config,
)
from tests.support.tsclient import TorchServeClient

pytestmark = pytest.mark.torchserve  # starts its own TorchServe

BODY = {"inputs": [MLP_ROW]}


def _inference_key(key_file: Path) -> str:
    return str(json.loads(key_file.read_text())["inference"]["key"])


def test_an_expired_inference_key_is_renewed(tmp_path: Path, model_store: Path) -> None:
    settings = TorchServeSettings(
        store=model_store,
        workdir=tmp_path / "ts",
        models=("mlp_torchscript",),
        ports=fresh_ports(),
        token_expiration_min=1,
    )
    server = TorchServe(settings)
    server.start()
    try:
        server.wait_ready()
        first = _inference_key(settings.key_file)
        backend = {
            "inference_url": settings.url("inference"),
            "key_file": str(settings.key_file),
            "management_url": settings.url("management"),
        }
        route = {"variants": [variant("stable", "mlp_torchscript", 100)]}
        config = write_config(tmp_path / "gateway.yaml", {"ts": backend}, {"mlp": route})
        with run_gateway(config) as gw, gw.client() as c:
            assert c.post("/predictions/mlp", json=BODY).status_code == 200

            def expired() -> bool:
                direct = httpx.post(
                    f"{settings.url('inference')}/predictions/mlp_torchscript/1.0",
                    json=BODY,
                    headers={"Authorization": f"Bearer {first}"},
                    timeout=30,
                )
                time.sleep(0.5)
                return direct.status_code == 400

            # TorchServe's own clock decides: wait until it refuses the first key.
            wait_for(expired, "TorchServe to expire the inference key", timeout_s=180)
            assert _inference_key(settings.key_file) == first  # TorchServe wrote no new key

            resp = c.post("/predictions/mlp", json=BODY)
            assert resp.status_code == 200, resp.text
            assert len(resp.json()["outputs"][0]) == 4
            assert _inference_key(settings.key_file) != first
            assert (
                gw.metric("servegate_backend_key_renewals_total", backend="ts", result="renewed")
                == 1
            )
            assert gw.metric("servegate_backend_auth_rejections_total", backend="ts") == 0
            assert c.post("/predictions/mlp", json=BODY).status_code == 200
    finally:
        server.stop()


def test_a_refused_renewal_is_503_with_metrics(
    tmp_path: Path, torchserve: TorchServeClient
) -> None:
    """A wrong API key: TorchServe refuses to renew (and keeps its keys), the client gets 503."""
    key_file = tmp_path / "key_file.json"
    real = json.loads(torchserve.settings.key_file.read_text())
    key_file.write_text(json.dumps({**real, "inference": {"key": "wrong"}, "API": {"key": "bad"}}))
    backends = {
        "ts": ts_backend(
            torchserve, key_file=str(key_file), management_url=torchserve.settings.url("management")
        )
    }
    config = write_config(tmp_path / "gateway.yaml", backends, {"mlp": split_route(100, 0)})
    with run_gateway(config) as gw, gw.client() as c:
        resp = c.post("/predictions/mlp", json=BODY)
        assert resp.status_code == 503
        assert "Token" not in resp.json()["message"]
        assert gw.metric("servegate_backend_key_renewals_total", backend="ts", result="failed") == 1
        assert gw.metric("servegate_backend_auth_rejections_total", backend="ts") == 1
    assert json.loads(torchserve.settings.key_file.read_text()) == real  # nothing rotated
    assert torchserve.predict("mlp_torchscript/1.0", json=BODY).status_code == 200
