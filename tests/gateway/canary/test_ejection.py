"""Outlier ejection against the fake TorchServe and a backend that refuses connections."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_ports
from tests.gateway.support import fire, run_gateway, variant, wait_for, write_config

pytestmark = pytest.mark.integration
EJECT = {"consecutive_failures": 3, "backoff_s": 2.0}


def _down() -> dict[str, Any]:
    return {"kind": "torchserve", "inference_url": f"http://127.0.0.1:{free_ports(1)[0]}"}


def _ejected(admin_url: str, route: str) -> dict[str, float | None]:
    routes = httpx.get(f"{admin_url}/status.json", timeout=10).json()["routes"]
    found = next(r for r in routes if r["name"] == route)
    return {v["name"]: v["ejected_s"] for v in found["variants"]}


@pytest.mark.slow
def test_refusing_backend_is_ejected_and_readmitted(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    fake_backends = {**fake_backends, "down": _down()}
    route = {
        "variants": [variant("stable", "mlp_stable", 50), variant("broken", "mlp", 50, "down")],
        "outlier_ejection": EJECT,
    }
    config = write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": route})
    with run_gateway(config) as gw:
        url = f"{gw.url}/predictions/mlp"
        ejections = {"route": "mlp", "variant": "broken"}
        # One request at a time until `broken` is ejected, then look at once: how long the
        # requests take (a loaded machine) must not decide whether the 2 s back-off is seen.
        first = until(url, lambda: gw.metric("servegate_outlier_ejections_total", **ejections))
        # Three refusals in a row eject `broken`; each was retried on stable (the connection
        # never opened), so the clients saw none of them.
        assert all(ans == (200, "stable") for ans in first), first
        retried = {"route": "mlp", "variant": "broken", "reason": "connect_failure"}
        assert gw.metric("servegate_upstream_retries_total", **retried) == 3
        assert gw.metric("servegate_variant_ejected", route="mlp", variant="broken") == 1
        left = _ejected(gw.admin_url, "mlp")["broken"]
        assert left is not None and 0 < left <= EJECT["backoff_s"]
        # After the back-off it is back in rotation (and, still refusing, ejected again).
        time.sleep(EJECT["backoff_s"])
        wait_for(lambda: _ejected(gw.admin_url, "mlp")["broken"] is None, "readmission")
        assert gw.metric("servegate_variant_ejected", route="mlp", variant="broken") == 0
        again = until(url, lambda: gw.metric("servegate_outlier_ejections_total", **ejections) == 2)
        assert all(ans == (200, "stable") for ans in again), again
        assert gw.metric("servegate_upstream_retries_total", **retried) == 6


def until(url: str, done: Callable[[], object], limit: int = 200) -> list[tuple[int, str | None]]:
    """Send one request at a time until ``done()``; the answers."""
    answers: list[tuple[int, str | None]] = []
    while not done():
        assert len(answers) < limit, f"not done after {limit} requests: {answers[-5:]}"
        answers += fire(url, 1, concurrency=1)
    return answers


@pytest.mark.slow
def test_the_last_variant_in_rotation_is_never_ejected(
    tmp_path: Path, fake_backends: dict[str, Any]
) -> None:
    fake_backends = {**fake_backends, "down1": _down(), "down2": _down()}
    route = {
        "variants": [variant("a", "mlp", 50, "down1"), variant("b", "mlp", 50, "down2")],
        # Held out for the whole test: each request now makes two attempts (the retry after a
        # backoff), so 40 of them can outlast the shared 2 s back-off.
        "outlier_ejection": {**EJECT, "backoff_s": 60.0},
    }
    config = write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": route})
    with run_gateway(config) as gw:
        answers = fire(f"{gw.url}/predictions/mlp", 40, concurrency=1)
        ejected = {
            name: gw.metric("servegate_variant_ejected", route="mlp", variant=name)
            for name in ("a", "b")
        }
    # One of them went out; the other kept answering (503, in the protocol's shape), never both.
    assert sorted(ejected.values()) == [0.0, 1.0]
    kept = next(name for name, value in ejected.items() if value == 0)
    assert all(code == 503 for code, _ in answers)
    assert answers[-10:] == [(503, kept)] * 10
