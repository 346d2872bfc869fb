"""``--precision`` is refused before any work for a format or device it cannot apply to."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.errors import ExportError
from export.pipeline import ExportRequest, run_export


def test_a_precision_for_an_fp32_format_is_refused(tmp_path: Path) -> None:
    request = ExportRequest(
        model="mlp", out=tmp_path, formats=("onnx", "compile"), precision="bf16"
    )
    with pytest.raises(ExportError, match=r"precision bf16 applies to compile only; onnx"):
        run_export(request)


def test_fp16_on_a_cpu_is_refused(tmp_path: Path) -> None:
    request = ExportRequest(model="mlp", out=tmp_path, formats=("compile",), precision="fp16")
    with pytest.raises(ExportError, match=r"fp16 is for GPUs .* use bf16 on a CPU"):
        run_export(request)
    assert not any(tmp_path.iterdir())  # refused before any work
