"""``onnx_int8``: a real export of MiniLM, reloaded and checked by cosine to fp32 eager."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export.pipeline import ExportRequest, run_export
from export.registry import resolve
from export.timing import TimingPlan

QUICK = TimingPlan(warmup=1, min_runs=1, max_runs=1, budget_s=0.0)


@pytest.mark.export
def test_minilm_int8_is_refused_at_the_default_bound_on_real_sentences(tmp_path: Path) -> None:
    """Measured (bench/int8_parity.py): int8 keeps cosine >= 0.99 on most inputs but not on
    short real sentences (worst 0.977). The bound is not loosened until it passes: the format
    fails its parity with the figure and the input, the same on every CPU (7-bit weights)."""
    assert resolve("minilm").tolerance.min_cosine == 0.99
    report = run_export(
        ExportRequest(model="minilm", out=tmp_path, formats=("onnx_int8",), timing=QUICK)
    )
    error = report.formats["onnx_int8"].error or ""
    assert re.fullmatch(
        r"parity: cosine 0\.97\d\d at 8 sentences of \d+-\d+ tokens below 0\.99\b.*", error
    ), error
    assert not (tmp_path / "minilm_onnx_int8.mar").exists()
    saved = json.loads((tmp_path / "minilm" / "export_report.json").read_text())
    assert saved["formats"]["onnx_int8"]["error"] == error


@pytest.mark.export
def test_a_spec_that_accepts_a_lower_bound_gets_int8_with_seven_bit_weights(
    tmp_path: Path,
) -> None:
    spec_file = tmp_path / "minilm_int8.py"
    spec_file.write_text(LOOSER_SPEC)
    report = run_export(
        ExportRequest(model=str(spec_file), out=tmp_path, formats=("onnx_int8",), timing=QUICK)
    )
    result = report.formats["onnx_int8"]
    assert result.parity_ok, result.error
    assert result.min_cosine is not None and 0.97 <= result.min_cosine < 0.99
    # 7-bit weights: 8-bit ones saturate ONNX Runtime's AVX2 u8 x s8 kernel (not VNNI's), which
    # made the verdict depend on the CPU (issue 12). 7-bit keeps every integer product exact.
    with zipfile.ZipFile(tmp_path / "minilm_onnx_int8.mar") as mar:
        graph = onnx.load_from_string(mar.read("model.onnx")).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    quantized = [n.input[1] for n in graph.node if n.op_type == "MatMulInteger"]
    assert len(quantized) == 12  # per layer: attention output and FFN up (not the GELU-fed one)
    for name in quantized:
        assert weights[name].dtype == np.int8
        assert int(weights[name].min()) >= -64 and int(weights[name].max()) <= 64, name


LOOSER_SPEC = """
from export.models.minilm import SPEC as MINILM

SPEC = MINILM.model_copy(
    update={"tolerance": MINILM.tolerance.model_copy(update={"min_cosine": 0.97})}
)
"""


@pytest.mark.export
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
