"""Versioned exports: ``servegate export MODEL --version V`` writes that version's archives,
pins and report beside the other versions', and the archive says its version."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from export.pipeline import ExportRequest, run_export
from gateway.backends import archive as gateway_archive
from handlers import manifest
from servegate import pins
from servegate.torchserve.identity import served_as
from tests.conftest import QUICK_TIMING
from tests.support.cli import run_servegate


@pytest.mark.parametrize("version", ["1.0", "2.0", "10.2.3"])
def test_the_gateway_finds_archives_by_the_export_s_rule(version: str) -> None:
    # The gateway repeats the naming rule (it imports nothing of handlers/): they must agree.
    assert gateway_archive.archive_file_name("m_onnx", version) == manifest.archive_file_name(
        "m_onnx", version
    )


@pytest.mark.parametrize("version", ["../2.0", "2.0/x", "v2", "2..0", "", "1.0;rm"])
def test_a_version_that_is_not_numbers_and_dots_is_refused(tmp_path: Path, version: str) -> None:
    result = run_servegate("export", "mlp", "--version", version, "--out", str(tmp_path))
    assert result.returncode == 2
    assert "use numbers and dots" in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.export
def test_a_second_version_sits_beside_the_first(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for version in ("1.0", "2.0"):
        report = run_export(
            ExportRequest(
                model="mlp",
                out=store,
                formats=("torchscript",),
                timing=QUICK_TIMING,
                version=version,
            )
        )
        assert not report.failed
        assert report.version == version
    assert sorted(p.name for p in store.glob("*.mar")) == [
        "mlp_torchscript.mar",
        "mlp_torchscript.v2.0.mar",
    ]
    pinned = pins.read(pins.pin_file_for(store)).archives
    assert {n: p.version for n, p in pinned.items()} == {
        "mlp_torchscript.mar": "1.0",
        "mlp_torchscript.v2.0.mar": "2.0",
    }
    # Each version's report names its own archive; 1.0's stays where it always was.
    v1 = json.loads((store / "mlp" / "export_report.json").read_text())
    v2 = json.loads((store / "mlp" / "v2.0" / "export_report.json").read_text())
    assert (v1["version"], v2["version"]) == ("1.0", "2.0")
    assert v1["formats"]["torchscript"]["archive"] == str(store / "mlp_torchscript.mar")
    assert v2["formats"]["torchscript"]["archive"] == str(store / "mlp_torchscript.v2.0.mar")
    assert v2["formats"]["torchscript"]["archive_sha256"] == (
        pinned["mlp_torchscript.v2.0.mar"].sha256
    )
    # One TorchServe model name, two versions; servegate.json carries the version too.
    for name, version in (("mlp_torchscript.mar", "1.0"), ("mlp_torchscript.v2.0.mar", "2.0")):
        served = served_as(store / name)
        assert (served.model, served.version) == ("mlp_torchscript", version)
        with zipfile.ZipFile(store / name) as mar:
            assert json.loads(mar.read(manifest.MANIFEST_NAME))["version"] == version
