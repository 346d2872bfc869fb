"""Prometheus /metrics on the admin listener: per route/variant series, bounded labels, and
TorchServe's per-model series re-exposed with route and variant."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.gateway.support import fire, run_gateway, wait_for

pytestmark = pytest.mark.integration


def test_per_variant_series_and_bounded_labels(fake_config_path: Path) -> None:
    with run_gateway(fake_config_path) as gw:
        pinned = fire(
            f"{gw.url}/predictions/mlp", 12, headers_for=lambda i: {"X-Servegate-Variant": "canary"}
        )
        assert pinned == [(200, "canary")] * 12
        for i in range(5):  # client-chosen names must not become label values
            httpx.post(f"{gw.url}/predictions/attacker-{i}", json={})
        m = gw.metric
        assert m("servegate_requests_total", route="mlp", variant="canary", code="200") == 12
        assert m("servegate_request_duration_seconds_count", route="mlp", variant="canary") == 12
        assert m("servegate_requests_total", route="_unknown", variant="_none", code="404") == 5
        assert m("servegate_route_weight", route="mlp", variant="stable") == 90
        assert m("servegate_route_weight", route="minilm", variant="canary") == 0
        assert m("servegate_in_flight_requests", route="mlp", variant="canary") == 0
        text = httpx.get(f"{gw.admin_url}/metrics").text
        assert "attacker" not in text
        backend = {"route": "mlp", "variant": "canary", "backend": "ts", "model": "mlp_onnx"}
        wait_for(
            lambda: m("servegate_backend_inference_requests_total", **backend) >= 12,
            "TorchServe's series re-exposed per variant",
        )
        assert m("servegate_backend_inference_latency_microseconds_total", **backend) > 0
        assert m("servegate_backend_queue_latency_microseconds_total", **backend) > 0
        assert m("servegate_backend_scrape_ok", backend="ts") == 1
