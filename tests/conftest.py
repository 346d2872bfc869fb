"""Shared fixtures: archives exported once per session and a real TorchServe serving them.

Everything here is real: the export pipeline writes real ``.mar`` files and TorchServe
(started through ``servegate.torchserve``) serves them on free loopback ports.

Tiers. Every test is marked by what it needs, so that ``make test-fast`` can leave out what is
slow to start. The marks come from the fixtures a test uses (``TIER_FIXTURES``) or, for a test
that runs the thing itself (a subprocess, its own export), from its module's ``pytestmark``:

- ``export``: a real export (traced, exported and reloaded models, ``.mar`` archives);
- ``torchserve``: a real TorchServe (Java) on loopback;
- ``browser``: a real Chromium;
- ``slow``: none of those, but seconds of traffic or waiting (10,000 requests, whole canary
  analysis intervals, slow clients, gateway processes started, drained and restarted); marked
  by hand, run by ``make test`` only.

A gateway test whose point is the gateway's own logic runs against the in-process fake
TorchServe (``tests/support/fake_torchserve.py``, fixtures in ``tests/gateway/conftest.py``),
which carries none of these marks.

A test with none of these marks runs in the fast tier, and there ``tier_guard`` makes starting
TorchServe or exporting a format fail at once with the mark the test is missing, so a test
cannot slip into the fast tier by forgetting its mark.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

from export import pipeline
from export.generation import pipeline as generation_pipeline
from export.pipeline import ExportRequest, run_export
from export.timing import TimingPlan
from servegate.ports import free_ports
from servegate.torchserve.process import TorchServe
from servegate.torchserve.settings import Ports, TorchServeSettings
from tests.support.archives import copy_archives
from tests.support.tsclient import TorchServeClient

__all__ = ["free_ports", "fresh_ports", "serving"]

SLOW_TIERS = ("export", "torchserve", "browser")
TIER_FIXTURES: dict[str, tuple[str, ...]] = {
    "model_store": ("export",),
    "scratch_store": ("export",),
    "mlp_dir": ("export",),
    "torchserve": ("export", "torchserve"),
    "byom_store": ("export",),
    "byom_served": ("export", "torchserve"),
    "compile_store": ("export",),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for fixture, tiers in TIER_FIXTURES.items():
            if fixture in fixtures:
                for tier in tiers:
                    item.add_marker(tier)


@pytest.fixture(autouse=True)
def tier_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a test without the mark, starting TorchServe or exporting a format fails loudly."""
    node = request.node

    def refuse(tier: str) -> Callable[..., NoReturn]:
        def refused(*args: object, **kwargs: object) -> NoReturn:
            raise AssertionError(f"{node.nodeid} needs the '{tier}' mark (see tests/conftest.py)")

        return refused

    if node.get_closest_marker("torchserve") is None:
        monkeypatch.setattr(TorchServe, "start", refuse("torchserve"))
    if node.get_closest_marker("export") is None:
        monkeypatch.setattr(pipeline, "_export_format", refuse("export"))
        monkeypatch.setattr(generation_pipeline, "_export_format", refuse("export"))


QUICK_TIMING = TimingPlan(warmup=1, min_runs=1, max_runs=1, budget_s=0.0)

# What the session's TorchServe serves: model -> formats. mlp waits up to 100 ms to fill a
# batch, so concurrent test requests really share one forward pass.
SERVING_OVERRIDES = {"mlp": {"max_batch_delay_ms": 100}}
SERVED = {
    "mlp": ("torchscript", "aoti", "onnx"),
    "minilm": ("torchscript", "onnx"),
    "resnet18": ("onnx",),
}


def fresh_ports() -> Ports:
    return Ports.ephemeral()


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The archives of ``SERVED``, exported once per test session."""
    logging.getLogger("servegate").setLevel(logging.INFO)
    store = tmp_path_factory.mktemp("store")
    for model, formats in SERVED.items():
        report = run_export(
            ExportRequest(
                model=model,
                out=store,
                formats=formats,
                timing=QUICK_TIMING,
                serving_overrides=SERVING_OVERRIDES.get(model, {}),
            )
        )
        assert not report.failed, report.failed
    return store


@pytest.fixture(scope="session")
def torchserve(
    model_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TorchServeClient]:
    """One real TorchServe serving every session archive."""
    with serving(model_store, tmp_path_factory.mktemp("ts")) as client:
        yield client


@contextmanager
def serving(store: Path, workdir: Path) -> Iterator[TorchServeClient]:
    """A real TorchServe on free ports serving every archive in ``store`` until exit."""
    settings = TorchServeSettings(store=store, workdir=workdir, ports=fresh_ports())
    server = TorchServe(settings)
    server.start()
    try:
        server.wait_ready()
        yield TorchServeClient(settings, server.keys())
    finally:
        server.stop()


@pytest.fixture(scope="session")
def compile_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mlp in format compile (its own store: Inductor compiles cost a minute on this CPU)."""
    store = tmp_path_factory.mktemp("compile_store")
    report = run_export(
        ExportRequest(model="mlp", out=store, formats=("compile",), timing=QUICK_TIMING)
    )
    assert not report.failed, report.failed
    return store


@pytest.fixture
def scratch_store(tmp_path: Path, model_store: Path) -> Path:
    """A private copy of the session store that a test may modify."""
    store = tmp_path / "store"
    copy_archives(model_store, store)
    return store
