"""Shadow traffic: copies go to the shadow variant, answers discarded, failures counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_ports
from tests.gateway.support import fire, run_gateway, split_route, variant, wait_for, write_config

pytestmark = pytest.mark.integration


def test_shadow_copies_requests_without_touching_answers(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    route = split_route(100, 0, shadow={"variant": "canary", "percent": 100})
    config = write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": route})
    with run_gateway(config) as gw:
        results = fire(f"{gw.url}/predictions/mlp", 50)
        assert results == [(200, "stable")] * 50
        shadowed = {"route": "mlp", "variant": "canary"}
        assert gw.metric("servegate_shadow_requests_total", **shadowed) == 50
        backend = {"route": "mlp", "variant": "canary", "backend": "ts"}
        wait_for(
            lambda: gw.metric("servegate_backend_inference_requests_total", **backend) >= 50,
            "the shadow variant to serve the copies",
        )
        assert gw.metric("servegate_shadow_failures_total", route="mlp", variant="canary") == 0


def test_shadow_failures_are_counted_not_surfaced(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    (dead,) = free_ports(1)
    fake_backends = {**fake_backends, "dead": {"inference_url": f"http://127.0.0.1:{dead}"}}
    route = {
        "variants": [
            variant("stable", "mlp_torchscript", 100),
            variant("broken", "mlp_onnx", 0, backend="dead"),
        ],
        "shadow": {"variant": "broken", "percent": 100},
    }
    config = write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": route})
    with run_gateway(config) as gw:
        assert fire(f"{gw.url}/predictions/mlp", 20) == [(200, "stable")] * 20
        labels = {"route": "mlp", "variant": "broken", "kind": "unavailable"}
        wait_for(
            lambda: gw.metric("servegate_shadow_failures_total", **labels) == 20,
            "20 counted shadow failures",
        )
