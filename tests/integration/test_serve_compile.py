"""mlp in format compile through a real TorchServe: answers like eager, alone and batched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from export.models import mlp
from tests.conftest import serving
from tests.support.tsclient import TorchServeClient

pytestmark = pytest.mark.torchserve


@pytest.fixture(scope="module")
def compile_served(
    compile_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TorchServeClient]:
    with serving(compile_store, tmp_path_factory.mktemp("ts_compile")) as client:
        yield client


@pytest.mark.parametrize("n", [1, 5])
def test_compile_answers_like_eager(compile_served: TorchServeClient, n: int) -> None:
    inputs = torch.randn(n, 16, generator=torch.Generator().manual_seed(n)).tolist()
    resp = compile_served.predict("mlp_compile", json={"inputs": inputs})
    assert resp.status_code == 200, resp.text
    with torch.inference_mode():
        expected = mlp.build(None)(torch.tensor(inputs))
    torch.testing.assert_close(torch.tensor(resp.json()["outputs"]), expected, atol=1e-5, rtol=1e-4)


def test_the_worker_started_from_the_archives_cache(compile_served: TorchServeClient) -> None:
    """The worker's Inductor cache directory is under TorchServe's own TMPDIR, empty at start:
    what it found there came from the archive."""
    logs = compile_served.settings.logdir / "model_log.log"
    text = logs.read_text()
    assert "Inductor cache loaded: 2 compiled graph(s)" in text
    assert "Inductor cache hit" in text
    assert "missed the Inductor cache" not in text
