"""Bring your own model, end to end: each source's fixture is made in the test (trained or
saved with its library's own API), exported with ``servegate export`` as a user runs it, and
every archive is served from ONE TorchServe behind ONE gateway for the whole package.

``EXPORTS`` maps an archive name to (its format, a function that makes the fixture in a folder
and returns the ``servegate export`` arguments that name it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import serving
from tests.gateway.support import RunningGateway, run_gateway, ts_backend, write_config
from tests.integration.byom import sources
from tests.support.tsclient import TorchServeClient

SERVEGATE = str(Path(sys.executable).with_name("servegate"))

EXPORTS: dict[str, tuple[str, Callable[[Path], list[str]]]] = {
    "hf_embedder": ("onnx", sources.hf_embedder),
    "hf_classifier": ("torchscript", sources.hf_classifier),
    "hf_vit": ("onnx", sources.hf_vit),
    "lightning": ("torchscript", sources.lightning_regressor),
    "hub": ("onnx", sources.hub_tinynet),
    "fastai": ("onnx", sources.fastai_learner),
}


@dataclass(frozen=True)
class ByomStore:
    store: Path
    fixtures: dict[str, Path]  # archive name -> the folder its fixture was made in

    def archive(self, name: str) -> str:
        return f"{name}_{EXPORTS[name][0]}"


@dataclass(frozen=True)
class Served:
    torchserve: TorchServeClient
    gateway: RunningGateway


def servegate_export(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``servegate export`` with its state (``.servegate/``, TORCH_HOME) under ``home``."""
    return subprocess.run(
        [SERVEGATE, "export", *args, "--timing-budget", "0"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "SERVEGATE_HOME": str(home)},
    )


@pytest.fixture(scope="package")
def byom_store(tmp_path_factory: pytest.TempPathFactory) -> ByomStore:
    store = tmp_path_factory.mktemp("byom_store")
    fixtures = {}
    for name, (fmt, make) in EXPORTS.items():
        folder = tmp_path_factory.mktemp(name)
        args = make(folder)
        result = servegate_export(
            *args, "--name", name, "--formats", fmt, "--out", str(store), home=folder
        )
        assert result.returncode == 0, f"{name}: {args}\n{result.stderr[-3000:]}"
        fixtures[name] = folder
    return ByomStore(store, fixtures)


@pytest.fixture(scope="package")
def byom_served(
    byom_store: ByomStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    with serving(byom_store.store, tmp_path_factory.mktemp("byom_ts")) as ts:
        routes = {
            name: {
                "variants": [
                    {
                        "name": "stable",
                        "backend": "ts",
                        "model": byom_store.archive(name),
                        "version": "1.0",
                        "weight": 100,
                    }
                ]
            }
            for name in EXPORTS
        }
        config = write_config(
            tmp_path_factory.mktemp("byom_gw") / "gateway.yaml", {"ts": ts_backend(ts)}, routes
        )
        with run_gateway(config) as gateway:
            yield Served(ts, gateway)
