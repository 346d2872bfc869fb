"""A real TorchServe serving the canary tests' archives: a stable mlp, a healthy ONNX canary,
and canaries that fail 20% of requests, add 200 ms, or perturb outputs to cosine ~0.9."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import serving
from tests.gateway.canary.support import faulty_archive
from tests.gateway.support import ts_backend
from tests.support.tsclient import TorchServeClient

ARCHIVES: dict[str, tuple[str, dict[str, float]]] = {
    "mlp_stable": ("mlp_torchscript", {}),
    "mlp_good": ("mlp_onnx", {}),
    "mlp_errors": ("mlp_torchscript", {"error_share": 0.2}),
    "mlp_slow": ("mlp_torchscript", {"delay_ms": 200}),
    "mlp_perturbed": ("mlp_torchscript", {"cosine": 0.9}),
}


@pytest.fixture(scope="session")
def canary_torchserve(
    model_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TorchServeClient]:
    store = tmp_path_factory.mktemp("canary-store")
    for name, (source, faults) in ARCHIVES.items():
        faulty_archive(model_store / f"{source}.mar", store, name, faults)
    with serving(store, tmp_path_factory.mktemp("canary-ts")) as client:
        yield client


@pytest.fixture
def canary_backends(canary_torchserve: TorchServeClient) -> dict[str, Any]:
    return {"ts": ts_backend(canary_torchserve)}
