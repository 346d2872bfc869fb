"""``onnx_int8``: a real export of MiniLM, reloaded and checked by cosine to fp32 eager."""

from __future__ import annotations

import json
from pathlib import Path

from export.pipeline import ExportRequest, run_export
from export.registry import resolve
from export.timing import TimingPlan

QUICK = TimingPlan(warmup=1, min_runs=1, max_runs=1, budget_s=0.0)


def test_minilm_int8_keeps_the_embedding(tmp_path: Path) -> None:
    report = run_export(
        ExportRequest(model="minilm", out=tmp_path, formats=("onnx_int8",), timing=QUICK)
    )
    result = report.formats["onnx_int8"]
    assert result.parity_ok, result.error
    assert result.min_cosine is not None and result.min_cosine >= 0.99
    assert (tmp_path / "minilm_onnx_int8.mar").is_file()
    saved = json.loads((tmp_path / "minilm" / "export_report.json").read_text())
    assert saved["formats"]["onnx_int8"]["min_cosine"] == result.min_cosine


def test_int8_of_a_model_without_matmul_weights_is_a_reported_failure(tmp_path: Path) -> None:
    report = run_export(
        ExportRequest(model="mlp", out=tmp_path, formats=("onnx_int8",), timing=QUICK)
    )
    assert "no MatMul weights to quantise" in (report.formats["onnx_int8"].error or "")
    assert not (tmp_path / "mlp_onnx_int8.mar").exists()


def test_resnet50_is_a_builtin() -> None:
    spec = resolve("resnet50")
    assert spec.task == "image_classification"
    assert spec.outputs[0].shape == ("batch", 1000)
