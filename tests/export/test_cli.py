"""`servegate export` as a user runs it: bad MODEL values, failing specs, partial failures.

The refusals that import a spec run the CLI in this process (``run_servegate``); the others run
the installed script in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import run_servegate

SERVEGATE = str(Path(sys.executable).with_name("servegate"))


def servegate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SERVEGATE, *args], capture_output=True, text=True, timeout=600, cwd=cwd, check=False
    )


def test_unknown_model_lists_the_known_ones(tmp_path: Path) -> None:
    result = servegate("export", "no_such_model", "--out", str(tmp_path))
    assert result.returncode != 0
    assert "unknown model 'no_such_model'" in result.stderr
    assert "Built-in models: minilm, mlp, resnet18, resnet50" in result.stderr


def test_spec_that_fails_to_import_shows_its_error(tmp_path: Path) -> None:
    spec = tmp_path / "broken_spec.py"
    spec.write_text("import not_a_real_module_for_servegate\n")
    result = run_servegate("export", str(spec), "--out", str(tmp_path / "out"))
    assert result.returncode != 0
    assert f"spec file {spec} failed to import" in result.stderr
    assert "ModuleNotFoundError: No module named 'not_a_real_module_for_servegate'" in result.stderr
    assert 'broken_spec.py", line 1' in result.stderr


def test_object_that_is_not_a_spec_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "not_a_spec.py"
    spec.write_text("SPEC = 42\n")
    result = run_servegate("export", str(spec), "--out", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "expected a servegate ModelSpec named 'SPEC', found int" in result.stderr


MISCOMPILED = """
import torch
from export.spec import ModelSpec, TensorSpec


class Doubler(torch.nn.Module):
    def forward(self, x):
        # Stands in for an exporter bug: the ONNX graph computes something else than eager.
        return x * 3 if torch.onnx.is_in_onnx_export() else x * 2


SPEC = ModelSpec(
    name="miscompiled",
    task="tensor",
    build=lambda weights: Doubler().eval(),
    example_inputs=lambda sizes: (torch.randn(sizes["batch"], 4),),
    inputs=(TensorSpec(name="x", shape=("batch", 4)),),
    outputs=(TensorSpec(name="y", shape=("batch", 4)),),
)
"""


@pytest.mark.export
def test_a_format_failing_parity_is_not_packaged_and_the_others_are(tmp_path: Path) -> None:
    spec = tmp_path / "miscompiled.py"
    spec.write_text(MISCOMPILED)
    out = tmp_path / "out"
    (out).mkdir()
    (out / "miscompiled_onnx.mar").write_bytes(b"stale archive from an earlier export")
    result = servegate(
        "export",
        str(spec),
        "--formats",
        "torchscript,onnx",
        "--out",
        str(out),
        "--timing-budget",
        "0",
    )
    assert result.returncode == 1
    assert "onnx was not packaged: parity: max abs error" in result.stderr
    assert "failed formats: onnx" in result.stderr
    assert (out / "miscompiled_torchscript.mar").is_file()
    assert not (out / "miscompiled_onnx.mar").exists()
    report = json.loads((out / "miscompiled" / "export_report.json").read_text())
    assert report["formats"]["torchscript"]["parity_ok"] is True
    assert report["formats"]["onnx"]["parity_ok"] is False
    assert report["formats"]["onnx"]["error"].startswith("parity: max abs error")
    assert "FAILED" in result.stdout


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    result = servegate("export", "mlp", "--formats", "tensorrt", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "unknown format(s) ['tensorrt']" in result.stderr


@pytest.mark.parametrize("weights_name", ["weights.safetensors", "weights.pt"])
def test_weights_that_do_not_fit_are_a_clear_error(tmp_path: Path, weights_name: str) -> None:
    import torch
    from safetensors.torch import save_file

    weights = tmp_path / weights_name
    state = {"wrong.weight": torch.zeros(2, 2)}
    if weights_name.endswith(".safetensors"):
        save_file(state, str(weights))
    else:
        torch.save(state, weights)
    result = run_servegate(
        "export",
        "mlp",
        "--weights",
        str(weights),
        "--formats",
        "onnx",
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2
    assert f"weights in {weights} do not fit the model" in result.stderr
