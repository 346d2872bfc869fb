"""``compile``: the eager module with ``torch.compile``'s work done ahead.

The archive carries the spec's Python file, the module's weights (safetensors), ``compile.json``
(``handlers.runtimes.compile_settings``) and Inductor's cache artifacts. A fresh process
compiles cold and saves the artifacts (``torch.compiler.save_cache_artifacts``) after running
every batch size the worker will see; a second fresh process then loads them as a worker does
and must find every graph in the cache, else the format fails. Both times go in the report
(``compile_cold_s``, ``compile_warm_s``).

Only a spec defined at module level in a Python file can be rebuilt in a worker (built-in
models, ``path/to/spec.py``, ``package.module:ATTR``); model sources that build their module
from other files (``hf:``, ``hub:``, ``fastai:``, a Lightning checkpoint) are refused.
"""

from __future__ import annotations

import inspect
import json
import logging
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_model

from export.exporters.compile_child import ChildResult, run_child
from export.spec import ModelSpec
from handlers.runtimes.compile_settings import (
    SETTINGS_NAME,
    CompileSettings,
    Precision,
    machine_kind,
    native_cpu_bf16,
)

log = logging.getLogger(__name__)
LOAD_TIMES = "compile_load.json"  # beside the artifact directory, read into the report


class CompileExporter:
    def __init__(self, precision: Precision = "fp32") -> None:
        self.precision: Precision = precision

    def export(
        self,
        module: torch.nn.Module,
        spec: ModelSpec,
        example: tuple[torch.Tensor, ...],
        out_dir: Path,
    ) -> list[Path]:
        source, attr = spec_source(spec)
        device = example[0].device
        if self.precision == "bf16" and device.type == "cpu" and not native_cpu_bf16():
            log.warning(
                "compile: this CPU has no bf16 instructions (AVX512_BF16 or AMX): bf16 is "
                "converted element by element and runs slower than fp32 here (MiniLM: 0.28x "
                "eager fp32 with the libraries held to AVX2); compare the report's latencies, "
                "and export bf16 on the kind of machine that serves it"
            )
        shutil.copyfile(source, out_dir / "model_spec.py")
        save_model(module, str(out_dir / "model.safetensors"))
        settings = CompileSettings(
            spec_file="model_spec.py",
            spec_attr=attr,
            weights="model.safetensors",
            cache="inductor_cache.bin",
            precision=self.precision,
            device_type=device.type,
            torch_version=torch.__version__,
            machine=machine_kind(device),
            dynamic_axes=tuple(tuple(sorted(t.dynamic_axes())) for t in spec.inputs),
        )
        artifact = settings.write(out_dir / SETTINGS_NAME)
        batches = tuple(sorted({1, spec.serving.batch_size}))
        cold = _checked(
            "cold",
            run_child("cold", artifact, str(device), batches, out_dir.parent / "inductor-cold"),
        )
        warm = _checked(
            "warm",
            run_child("warm", artifact, str(device), batches, out_dir.parent / "inductor-warm"),
        )
        if warm.cache_misses or not warm.cache_hits:
            raise RuntimeError(
                f"a fresh process loading the Inductor cache found {warm.cache_hits} graph(s) in "
                f"it and compiled {warm.cache_misses} cold: the cache does not serve this model"
            )
        log.info(
            "compile: cold %.1f s, from the cache %.1f s (%d graphs, batch sizes %s)",
            cold.seconds,
            warm.seconds,
            warm.cache_hits,
            batches,
        )
        (out_dir.parent / LOAD_TIMES).write_text(
            json.dumps({"compile_cold_s": cold.seconds, "compile_warm_s": warm.seconds})
        )
        return [
            artifact,
            *(out_dir / name for name in (settings.weights, settings.spec_file, settings.cache)),
        ]


def read_load_times(fmt_dir: Path) -> tuple[float | None, float | None]:
    """The cold and warm compile times the exporter measured (None for other formats)."""
    path = fmt_dir / LOAD_TIMES
    if not path.is_file():
        return None, None
    times = json.loads(path.read_text())
    return float(times["compile_cold_s"]), float(times["compile_warm_s"])


def spec_source(spec: ModelSpec) -> tuple[Path, str]:
    """The Python file defining ``spec`` at module level, and the attribute naming it."""
    module = inspect.getmodule(spec.build)
    path = getattr(module, "__file__", None)
    for attr, value in vars(module).items() if module is not None else ():
        if isinstance(value, ModelSpec) and value.build is spec.build and path:
            return Path(path), attr
    raise ValueError(
        f"format compile rebuilds the module in the worker from the spec's own Python file; "
        f"{spec.name}'s build() is not beside a ModelSpec defined at module level (model "
        "sources hf:, hub:, fastai: and Lightning checkpoints are not): export it as "
        "torchscript, aoti or onnx, or write a spec file (docs/export.md)"
    )


def _checked(mode: str, result: ChildResult) -> ChildResult:
    if result.error is not None:
        raise RuntimeError(f"the {mode} torch.compile in a fresh process failed: {result.error}")
    return result
