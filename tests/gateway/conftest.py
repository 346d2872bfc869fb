"""Gateway fixtures: a config pointing at the session's real TorchServe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.gateway.support import split_route, ts_backend, write_config
from tests.support.tsclient import TorchServeClient


@pytest.fixture
def backends(torchserve: TorchServeClient) -> dict[str, Any]:
    return {"ts": ts_backend(torchserve)}


@pytest.fixture
def config_path(tmp_path: Path, backends: dict[str, Any]) -> Path:
    """mlp 90/10 (TorchScript/ONNX) with pinning, minilm 100/0."""
    routes = {
        "mlp": split_route(90, 10, pin_header="X-Servegate-Variant"),
        "minilm": {
            "variants": [
                {"name": "stable", "backend": "ts", "model": "minilm_torchscript", "weight": 100},
                {"name": "canary", "backend": "ts", "model": "minilm_onnx", "weight": 0},
            ],
            "pin_header": "X-Servegate-Variant",
        },
    }
    return write_config(tmp_path / "gateway.yaml", backends, routes)
