"""Format ``compile``: the eager module and Inductor's cache artifacts in one archive, and a
worker whose ``torch.compile`` finds its graphs in that cache (counted, not timed)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from export.models import mlp
from export.pipeline import ExportRequest, run_export
from handlers.errors import IntegrityError
from handlers.manifest import Manifest
from handlers.runtimes.compile_settings import SETTINGS_NAME, CompileSettings, machine_kind
from handlers.runtimes.compiled import CompiledRuntime
from handlers.service import ModelService
from tests.conftest import QUICK_TIMING

pytestmark = pytest.mark.export

ARTIFACTS = {SETTINGS_NAME, "model.safetensors", "model_spec.py", "inductor_cache.bin"}
# A worker's start, in a fresh process with an empty Inductor cache: the service loads (its
# warm-up included), serves a batch of 5, and reports the cache counters of its runtime.
FRESH_WORKER = """
import json, sys, torch
from pathlib import Path
from handlers.service import ModelService
service = ModelService.load(Path(sys.argv[1]), torch.device("cpu"))
out = service.runtime.run([torch.randn(5, 16, generator=torch.Generator().manual_seed(1))])
print(json.dumps({"hits": service.runtime.cache_hits, "misses": service.runtime.cache_misses,
                  "out": out.tolist()}))
"""


def extracted(store: Path, target: Path, name: str = "mlp_compile.mar") -> Path:
    with zipfile.ZipFile(store / name) as mar:
        mar.extractall(target)
    return target


def eager(inputs: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        out: torch.Tensor = mlp.build(None)(inputs)
        return out


def test_report_holds_parity_and_both_compile_times(compile_store: Path) -> None:
    entry = json.loads((compile_store / "mlp" / "export_report.json").read_text())["formats"][
        "compile"
    ]
    assert entry["parity_ok"] is True
    assert entry["max_abs_err"] < 1e-5
    assert entry["precision"] == "fp32"
    assert entry["compile_cold_s"] > 0 and entry["compile_warm_s"] > 0
    assert set(entry["latency_ms"]) == {"1", "8", "32"}


def test_archive_holds_module_weights_and_cache(compile_store: Path, tmp_path: Path) -> None:
    files = set(zipfile.ZipFile(compile_store / "mlp_compile.mar").namelist())
    assert files >= ARTIFACTS
    model_dir = extracted(compile_store, tmp_path)
    manifest = Manifest.read(model_dir)
    assert (manifest.format, manifest.artifact, manifest.precision) == (
        "compile",
        SETTINGS_NAME,
        "fp32",
    )
    assert set(manifest.sha256) >= ARTIFACTS  # every artifact sealed
    settings = CompileSettings.read(model_dir / SETTINGS_NAME)
    assert settings.torch_version == torch.__version__
    assert settings.machine == machine_kind(torch.device("cpu"))
    assert settings.dynamic_axes == ((0,),)
    assert (model_dir / "inductor_cache.bin").stat().st_size > 0


def test_a_fresh_worker_process_hits_the_cache(compile_store: Path, tmp_path: Path) -> None:
    model_dir = extracted(compile_store, tmp_path / "model")
    env = {
        **os.environ,
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "empty-inductor-cache"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    done = subprocess.run(
        [sys.executable, "-c", FRESH_WORKER, str(model_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["misses"] == 0, done.stderr[-3000:]
    assert result["hits"] >= 1
    expected = eager(torch.randn(5, 16, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(torch.tensor(result["out"]), expected, atol=1e-5, rtol=1e-4)


def test_the_manifest_refuses_a_tampered_cache(compile_store: Path, tmp_path: Path) -> None:
    model_dir = extracted(compile_store, tmp_path)
    (model_dir / "inductor_cache.bin").write_bytes(b"not an inductor cache")
    with pytest.raises(IntegrityError, match=r"inductor_cache\.bin failed its SHA-256 check"):
        ModelService.load(model_dir, torch.device("cpu"))


@pytest.mark.parametrize("damage", ["corrupt bytes", "another torch", "another machine"])
def test_an_unusable_cache_compiles_cold_and_says_so(
    compile_store: Path,
    tmp_path: Path,
    damage: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Behind the manifest (a store's own export gone stale, a torch upgrade): never a crash."""
    model_dir = extracted(compile_store, tmp_path / "model")
    if damage == "corrupt bytes":
        cache = model_dir / "inductor_cache.bin"
        cache.write_bytes(cache.read_bytes()[:100] + os.urandom(64))
        expected_log = "could not be read (torch found it corrupt or empty)"
    elif damage == "another torch":
        settings = CompileSettings.read(model_dir / SETTINGS_NAME)
        settings.model_copy(update={"torch_version": "2.0.0"}).write(model_dir / SETTINGS_NAME)
        expected_log = "written by torch 2.0.0"
    else:  # exported where Inductor picked another vector ISA (the same torch finds it a hit)
        settings = CompileSettings.read(model_dir / SETTINGS_NAME)
        settings.model_copy(update={"machine": "cpu:vsx"}).write(model_dir / SETTINGS_NAME)
        expected_log = "compiled for cpu:vsx; this worker runs on cpu:"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "empty-inductor-cache"))
    caplog.set_level(logging.INFO, logger="handlers.runtimes.compiled")

    runtime = CompiledRuntime.load(model_dir / SETTINGS_NAME, torch.device("cpu"))
    inputs = torch.randn(3, 16, generator=torch.Generator().manual_seed(2))
    out = runtime.run([inputs])

    torch.testing.assert_close(out, eager(inputs), atol=1e-5, rtol=1e-4)
    assert runtime.cache_misses >= 1 and runtime.cache_hits == 0
    assert expected_log in caplog.text
    assert "no usable Inductor cache for inputs [(3, 16)]: compiled 1 graph(s) cold" in caplog.text


def test_bf16_is_verified_by_cosine_and_recorded(tmp_path: Path) -> None:
    report = run_export(
        ExportRequest(
            model="mlp",
            out=tmp_path,
            formats=("compile",),
            timing=QUICK_TIMING,
            precision="bf16",
        )
    )
    assert not report.failed, report.failed
    entry = report.formats["compile"]
    assert entry.precision == "bf16"
    assert entry.min_cosine is not None and 0.99 <= entry.min_cosine < 1.0
    manifest = Manifest.read(extracted(tmp_path, tmp_path / "model"))
    assert (manifest.precision, manifest.min_cosine) == ("bf16", entry.min_cosine)
