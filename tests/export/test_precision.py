"""``--precision`` is refused before any work for a format or device it cannot apply to."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.errors import ExportError
from export.pipeline import ExportRequest, run_export
from export.report import ExportReport, FormatReport


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


def test_the_printed_report_names_precision_cosine_and_compile_times() -> None:
    entry = FormatReport(
        parity_ok=True,
        precision="bf16",
        min_cosine=0.99871,
        compile_cold_s=60.2,
        compile_warm_s=8.4,
    )
    table = ExportReport(model="mlp", formats={"compile": entry}).table()
    assert "compile: computes in bf16, min cosine 0.9987 to fp32 eager" in table
    assert "60.2 s cold, 8.4 s from the archive's cache" in table


def test_bf16_counts_as_native_only_where_the_libraries_may_use_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from handlers.runtimes.compile_settings import machine_kind, native_cpu_bf16

    hardware = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    assert native_cpu_bf16() == hardware
    # Held to AVX2 (as an AVX2-only EPYC is), Inductor and ATen emulate bf16: not native.
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert native_cpu_bf16() is False
    # and the machine a compile archive names is then another one: its cache is not loaded
    assert machine_kind(torch.device("cpu")) == "cpu:avx2"
