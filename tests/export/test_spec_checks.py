"""`servegate export` checks a spec before exporting anything, and its errors point at the
user's own code. Specs refused before any format is exported run the CLI in this process
(``check``); exports run it as a user types it, in a subprocess (``export``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import run_servegate

SERVEGATE = str(Path(sys.executable).with_name("servegate"))
ROOT = Path(__file__).resolve().parents[2]

SPEC = """
import torch
from export.spec import ModelSpec, TensorSpec


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, {out_features})

    def forward(self, x):
        return self.linear(x)


def build(weights):
    {build_body}


def example_inputs(sizes):
    {inputs_body}


SPEC = ModelSpec(
    name="checked",
    task="tensor",
    build=build,
    example_inputs=example_inputs,
    inputs=(TensorSpec(name="x", shape={in_shape}),),
    outputs=(TensorSpec(name="y", shape={out_shape}),),
)
"""
GOOD = {
    "out_features": "10",
    "build_body": "return Model().eval()",
    "inputs_body": 'return (torch.randn(sizes["batch"], 8),)',
    "in_shape": '("batch", 8)',
    "out_shape": '("batch", 10)',
}


def export(
    spec: Path, out: Path, *formats: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`servegate export SPEC` as a user types it, in a subprocess."""
    return subprocess.run(
        [SERVEGATE, "export", *export_args(spec, out, *formats)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        check=False,
    )


def check(spec: Path, out: Path, *formats: str) -> subprocess.CompletedProcess[str]:
    """The same in this process: for specs refused before any format is exported."""
    return run_servegate("export", *export_args(spec, out, *formats))


def export_args(spec: Path, out: Path, *formats: str) -> list[str]:
    formats = formats or ("torchscript",)
    return [str(spec), "--formats", ",".join(formats), "--out", str(out), "--timing-budget", "0"]


def write_spec(tmp_path: Path, **changes: str) -> Path:
    path = tmp_path / "checked_spec.py"
    path.write_text(SPEC.format(**{**GOOD, **changes}))
    return path


def assert_nothing_exported(result: subprocess.CompletedProcess[str], out: Path) -> None:
    assert "format 1/" not in result.stderr
    assert not list(out.glob("*.mar"))


def test_declared_output_shape_that_the_model_does_not_return(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = check(write_spec(tmp_path, out_shape='("batch", 5)'), out, "torchscript", "onnx")
    assert result.returncode == 3, result.stderr
    assert "the model's output does not match the spec" in result.stderr
    assert (
        "output 'y': declared shape ['batch', 5] dtype float32, i.e. [2, 5] at batch=2; "
        "the model gives [2, 10] dtype float32" in result.stderr
    )
    assert_nothing_exported(result, out)


def test_declared_input_shape_that_example_inputs_do_not_have(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = check(write_spec(tmp_path, in_shape='("batch", 9)'), out)
    assert result.returncode == 3, result.stderr
    assert (
        "input 'x': declared shape ['batch', 9] dtype float32, i.e. [2, 9] at batch=2; "
        "the model gives [2, 8] dtype float32" in result.stderr
    )
    assert_nothing_exported(result, out)


def test_declared_dtype_is_checked(tmp_path: Path) -> None:
    out = tmp_path / "out"
    body = 'return (torch.randint(0, 9, (sizes["batch"], 8)),)'
    result = check(write_spec(tmp_path, inputs_body=body), out)
    assert result.returncode == 3, result.stderr
    assert "declared shape ['batch', 8] dtype float32" in result.stderr
    assert "the model gives [2, 8] dtype int64" in result.stderr


def test_build_that_raises_shows_the_users_line_and_exits_3(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = write_spec(tmp_path, build_body='raise RuntimeError("no checkpoint here")')
    result = check(spec, out)
    assert result.returncode == 3, result.stderr
    assert "build() raised:" in result.stderr
    assert f'File "{spec}", line 16, in build' in result.stderr
    assert "RuntimeError: no checkpoint here" in result.stderr
    assert "export/pipeline.py" not in result.stderr  # servegate's frames are not the user's
    assert_nothing_exported(result, out)


def test_example_inputs_that_raise_show_the_users_line(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, inputs_body='return (torch.randn(sizes["batchsize"], 8),)')
    result = check(spec, tmp_path / "out")
    assert result.returncode == 3, result.stderr
    assert "example_inputs({'batch': 2}) raised:" in result.stderr
    assert f'File "{spec}", line 20, in example_inputs' in result.stderr
    assert "KeyError: 'batchsize'" in result.stderr


def test_export_help_documents_exit_codes_models_and_formats() -> None:
    result = subprocess.run(
        [SERVEGATE, "export", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "built-in: minilm, mlp, resnet18, resnet50" in result.stdout
    assert "torchscript, aoti, onnx, onnx_int8" in result.stdout
    assert "(default: torchscript,aoti,onnx)" in result.stdout
    for code in ("0  every", "1  some formats failed", "2  nothing was exported", "3  the spec"):
        assert code in result.stdout


def test_cli_constants_agree_with_the_export_package() -> None:
    from export.pipeline import DEFAULT_FORMATS, FORMATS
    from export.registry import BUILTINS
    from servegate.commands import export_cmd

    assert export_cmd.FORMATS == FORMATS
    assert ",".join(DEFAULT_FORMATS) == export_cmd.DEFAULT_FORMATS
    assert tuple(sorted(BUILTINS)) == export_cmd.BUILTIN_MODELS


BRANCHY = """
import torch
from export.spec import ModelSpec, TensorSpec


class Branchy(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.export cannot trace it
            return x * 2
        return x - 1


SPEC = ModelSpec(
    name="branchy",
    task="tensor",
    build=lambda weights: Branchy().eval(),
    example_inputs=lambda sizes: (torch.randn(sizes["batch"], 4),),
    inputs=(TensorSpec(name="x", shape=("batch", 4)),),
    outputs=(TensorSpec(name="y", shape=("batch", 4)),),
)
"""


@pytest.mark.export  # exports in a subprocess
def test_onnx_failure_shows_the_summary_and_the_users_line(tmp_path: Path) -> None:
    spec = tmp_path / "branchy.py"
    spec.write_text(BRANCHY)
    out = tmp_path / "out"
    result = export(spec, out, "onnx")
    assert result.returncode == 1, result.stderr
    console = result.stdout + result.stderr
    assert "\x1b[" not in console
    assert "def forward(self, arg0_1" not in console  # torch's FX graph dump stays off it
    assert "This is step 1/3 of exporting the model to ONNX" in result.stderr
    assert "caused by GuardOnDataDependentSymNode: Could not guard on data-dependent" in (
        result.stderr
    )
    assert f"at {spec}:8 in forward: if x.sum() > 0:" in result.stderr
    error_log = (out / "branchy" / "onnx" / "error.log").read_text()
    assert "\x1b[" not in error_log
    assert "Next steps:" in error_log
    assert "printed during export" in error_log
    assert "def forward(self, arg0_1" in error_log


@pytest.mark.export  # exports in a subprocess
def test_report_keeps_every_archive_across_runs_and_module_paths_resolve_from_cwd(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    first = export(Path("examples.house_prices:SPEC"), out, "torchscript", cwd=ROOT)
    assert first.returncode == 0, first.stderr
    second = export(Path("examples/house_prices.py"), out, "onnx", cwd=ROOT)
    assert second.returncode == 0, second.stderr

    report = json.loads((out / "house_prices" / "export_report.json").read_text())
    archives = {p.name for p in out.glob("house_prices_*.mar")}
    assert archives == {"house_prices_torchscript.mar", "house_prices_onnx.mar"}
    assert {f"house_prices_{fmt}.mar" for fmt in report["formats"]} == archives
    assert all(r["parity_ok"] and r["exported_at"] for r in report["formats"].values())
    assert not (out / "house_prices" / ".export.lock").exists()
