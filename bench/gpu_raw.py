"""Raw model throughput on one GPU per format and precision: no HTTP, inputs already on the GPU.

Variants: eager fp32 (TF32 off), eager bf16 (channels-last for images), eager bf16 replayed as
one CUDA graph, ``torch.compile(mode="max-autotune")`` in bf16 (Inductor's CUDA graphs
included), TorchScript (trace) in bf16, and the AOTInductor ``.pt2`` in bf16, loaded in a child
process first (``aoti_load_package`` was seen to segfault on the H200's torch). Every figure
carries its ceiling: peak FLOP/s divided by the FLOPs of one inference.

    python -m bench.gpu_raw --models resnet50 --out $OUT/raw-resnet50.json [--budget-s 500]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.ceiling import H200_PEAK_FLOPS, flops_per_item, measured_matmul_peak
from bench.gpu_aoti import aoti_variant
from bench.gpu_models import MODELS, BenchModel, minilm_weights
from bench.gpu_ort import bench_ort
from bench.gpu_profile import profile_to
from bench.gpu_timing import Runner, cuda_graphed, throughput

log = logging.getLogger("bench")
SEQ = 128
BATCHES = {"resnet50": (1, 8, 32, 128, 256, 512), "minilm": (1, 8, 32, 128, 512)}
COMPILE_BATCH = {"resnet50": 256, "minilm": 128}
SLOW_VARIANTS = ("torchscript", "compile-max-autotune", "compile-freeze", "aoti", "onnxruntime")
SEQ_SWEEP = (16, 32, 64, 128, 256, 512)
SEQ_SWEEP_BATCH = 32


def prepare(model: BenchModel, dtype: torch.dtype, device: torch.device) -> nn.Module:
    module = model.build().to(device)
    if dtype != torch.float32:
        module = module.to(dtype)
    if model.image:
        module = module.to(memory_format=torch.channels_last)
    return module.eval()


def cast(inputs: tuple[torch.Tensor, ...], dtype: torch.dtype, image: bool) -> tuple[Any, ...]:
    out = tuple(t.to(dtype) if t.is_floating_point() else t for t in inputs)
    if image:
        out = tuple(t.contiguous(memory_format=torch.channels_last) for t in out)
    return out


def eager_runner(module: nn.Module) -> Callable[..., Runner]:
    def make(*inputs: torch.Tensor) -> Runner:
        def run() -> object:
            with torch.inference_mode():
                return module(*inputs)

        return run

    return make


class Recorder:
    """Rows and failures of one model, each saved to ``out`` as soon as it is measured."""

    def __init__(self, model: BenchModel, result: dict[str, Any], out: Path) -> None:
        self.model, self.result, self.out = model, result, out
        self._flops: dict[int, float] = {}

    def flops(self, seq: int) -> float:
        if seq not in self._flops:
            inputs = self.model.inputs(1, max(seq, 1), torch.device("cpu"))
            self._flops[seq] = flops_per_item(self.model.build(), inputs)
        return self._flops[seq]

    def __call__(
        self, variant: str, dtype: str, batch: int, seq: int, timed: dict[str, float]
    ) -> None:
        flops = self.flops(seq)
        ceiling = H200_PEAK_FLOPS[dtype] / flops
        row: dict[str, Any] = {
            "model": self.model.name,
            "variant": variant,
            "dtype": dtype,
            "batch": batch,
            "seq": seq,
            **timed,
            "flops_per_item": flops,
            "ceiling_per_s": round(ceiling, 1),
            "pct_of_ceiling": round(100 * timed["items_per_s"] / ceiling, 2),
        }
        log.info("%s", json.dumps(row))
        self.result["rows"].append(row)
        self.save()

    def fail(self, variant: str, error: str) -> None:
        self.result["failures"].append(
            {"model": self.model.name, "variant": variant, "error": error}
        )
        self.save()

    def save(self) -> None:
        self.out.write_text(json.dumps(self.result, indent=2))


def bench_eager(model: BenchModel, device: torch.device, record: Recorder) -> None:
    seq = 0 if model.image else SEQ
    for dtype_name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        module = prepare(model, dtype, device)
        make = eager_runner(module)
        for batch in BATCHES[model.name]:
            inputs = cast(model.inputs(batch, max(seq, 1), device), dtype, model.image)
            record("eager", dtype_name, batch, seq, throughput(make(*inputs), batch))
            if dtype == torch.bfloat16:
                graph = cuda_graphed(module, inputs)
                record("eager+cudagraph", dtype_name, batch, seq, throughput(graph, batch))
        if not model.image:
            for s in SEQ_SWEEP:
                inputs = cast(model.inputs(SEQ_SWEEP_BATCH, s, device), dtype, False)
                timed = throughput(make(*inputs), SEQ_SWEEP_BATCH)
                record("eager", dtype_name, SEQ_SWEEP_BATCH, s, timed)
        del module
        torch.cuda.empty_cache()


def bench_compiled(
    model: BenchModel,
    device: torch.device,
    deadline: float,
    record: Recorder,
    *,
    variants: tuple[str, ...] = SLOW_VARIANTS,
    profile_dir: Path | None = None,
) -> None:
    """TorchScript, torch.compile and AOTInductor at one batch size each (each compiles)."""
    batch, seq = COMPILE_BATCH[model.name], (0 if model.image else SEQ)
    module = prepare(model, torch.bfloat16, device)
    inputs = cast(model.inputs(batch, max(seq, 1), device), torch.bfloat16, model.image)
    steps: list[tuple[str, Callable[[], Runner]]] = [
        ("torchscript", lambda: _torchscript(module, inputs)),
        ("compile-max-autotune", lambda: _compiled(module, inputs)),
        ("compile-freeze", lambda: _frozen(module, inputs)),
        ("aoti", lambda: aoti_variant(module, inputs, model.image)),
    ]
    if "onnxruntime" in variants:
        with tempfile.TemporaryDirectory(prefix="bench-ort-") as work:
            bench_ort(
                prepare(model, torch.float32, device),
                model.inputs(batch, max(seq, 1), device),
                batch=batch,
                seq=seq,
                transformer=not model.image,
                work=Path(work),
                record=record,
                fail=record.fail,
            )
    for name, factory in steps:
        if name not in variants:
            continue
        if time.monotonic() > deadline:
            record.fail(name, "skipped: time budget")
            continue
        started = time.monotonic()
        try:
            run = factory()
            result = throughput(run, batch)
        except Exception as exc:  # a failing format is a result, not the end of the suite
            log.exception("%s %s failed", model.name, name)
            record.fail(name, repr(exc)[:500])
            continue
        result["build_and_time_s"] = round(time.monotonic() - started, 1)
        if profile_dir is not None:
            busy = profile_to(run, profile_dir / f"profile-{model.name}-{name}.txt")
            result["gpu_busy"] = round(busy, 3)
        record(name, "bfloat16", batch, seq, result)
        torch.compiler.reset()


def _torchscript(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Runner:
    with torch.inference_mode():
        traced = torch.jit.freeze(
            torch.jit.trace(module, inputs, check_trace=False, strict=False)  # type: ignore[no-untyped-call]
        )

    def run() -> object:
        with torch.inference_mode():
            return traced(*inputs)

    return run


def _compiled(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Runner:
    compiled = torch.compile(module, mode="max-autotune", dynamic=False)

    def run() -> object:
        with torch.inference_mode():
            return compiled(*inputs)

    return run


def _frozen(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Runner:
    """Inductor with freezing (weights as constants: batch norm folded into convolutions,
    layouts chosen once) and CUDA graphs; default autotuning, so it compiles in about a minute."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    compiled = torch.compile(module, mode="reduce-overhead", dynamic=False)

    def run() -> object:
        with torch.inference_mode():
            return compiled(*inputs)

    return run


def environment() -> dict[str, Any]:
    props = torch.cuda.get_device_properties(0)
    return {
        "gpu": torch.cuda.get_device_name(0),
        "sms": props.multi_processor_count,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": sys.version.split()[0],
        "measured_bf16_matmul_flops": measured_matmul_peak(torch.bfloat16),
        "minilm_weights": minilm_weights(),
        "peak_flops_datasheet": H200_PEAK_FLOPS,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="resnet50,minilm")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=500, help="skip compiles after this")
    parser.add_argument("--variants", default=",".join(SLOW_VARIANTS), help="compiled variants")
    parser.add_argument("--no-eager", action="store_true", help="compiled variants only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    deadline = time.monotonic() + args.budget_s
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    result: dict[str, Any] = {"environment": environment(), "rows": [], "failures": []}
    models = [MODELS[name] for name in args.models.split(",")]
    recorders = [Recorder(model, result, args.out) for model in models]
    if not args.no_eager:
        for model, record in zip(models, recorders, strict=True):
            bench_eager(model, device, record)
    variants = tuple(args.variants.split(","))
    for model, record in zip(models, recorders, strict=True):
        bench_compiled(
            model, device, deadline, record, variants=variants, profile_dir=args.out.parent
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
