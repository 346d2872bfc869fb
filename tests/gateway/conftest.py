"""Gateway fixtures: configs pointing at the session's real TorchServe (``backends``,
``config_path``) or at an in-process fake of it (``fake_backends``, ``fake_config_path``).

A test whose point is the gateway's own logic (routing, shadow, ejection, analysis, errors)
runs against the fake (``tests/support/fake_torchserve.py``) and so in the fast tier; what only
TorchServe can show (output parity with the exported model, its handlers' 400s, keys, workers)
stays on the real one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.support import RunningGateway, run_gateway, split_route, ts_backend, write_config
from tests.support import fake_torchserve
from tests.support.fake_torchserve import FakeTorchServe
from tests.support.tsclient import TorchServeClient


def default_routes() -> dict[str, Any]:
    """mlp 90/10 (TorchScript/ONNX) with pinning, minilm 100/0."""
    return {
        "mlp": split_route(90, 10, pin_header="X-Servegate-Variant"),
        "minilm": {
            "variants": [
                {"name": "stable", "backend": "ts", "model": "minilm_torchscript", "weight": 100},
                {"name": "canary", "backend": "ts", "model": "minilm_onnx", "weight": 0},
            ],
            "pin_header": "X-Servegate-Variant",
        },
    }


@pytest.fixture
def backends(torchserve: TorchServeClient) -> dict[str, Any]:
    return {"ts": ts_backend(torchserve)}


@pytest.fixture
def config_path(tmp_path: Path, backends: dict[str, Any]) -> Path:
    return write_config(tmp_path / "gateway.yaml", backends, default_routes())


@pytest.fixture(scope="session")
def fake_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest-only archives of the fake's models (what the gateway reads for metadata)."""
    return fake_torchserve.write_store(
        tmp_path_factory.mktemp("fake-store"), fake_torchserve.catalogue()
    )


@pytest.fixture
def fake_ts() -> Iterator[FakeTorchServe]:
    """A fresh fake TorchServe per test: a test may script its models' behaviour."""
    with fake_torchserve.running() as fake:
        yield fake


@pytest.fixture
def fake_backends(fake_ts: FakeTorchServe, fake_store: Path) -> dict[str, Any]:
    return {"ts": fake_ts.backend(fake_store)}


@pytest.fixture
def fake_config_path(tmp_path: Path, fake_backends: dict[str, Any]) -> Path:
    return write_config(tmp_path / "gateway.yaml", fake_backends, default_routes())


@pytest.fixture(scope="module")
def shared_gateway(
    tmp_path_factory: pytest.TempPathFactory, fake_store: Path
) -> Iterator[RunningGateway]:
    """One gateway (``default_routes``) in front of one fake, for a module's tests that only
    read answers: none may change its config, script the fake or count its metrics."""
    with fake_torchserve.running() as fake:
        config = write_config(
            tmp_path_factory.mktemp("shared-gateway") / "gateway.yaml",
            {"ts": fake.backend(fake_store)},
            default_routes(),
        )
        with run_gateway(config) as gw:
            yield gw
