"""ONNX Runtime with its CUDA execution provider on the GPU, fp32 and fp16.

The module is exported with ``torch.onnx.export`` (TorchScript-based exporter, as the export
pipeline does for transformer encoders; Hugging Face attention switched to its plain form so
ORT can fuse it), optimised with ORT's transformer optimiser for MiniLM (fused Attention,
SkipLayerNorm, BiasGelu), and converted to fp16 with ORT's own converter (inputs and outputs
kept fp32). Inputs and outputs are bound on the GPU (``IOBinding``), so, as for the PyTorch
variants, no host copy is timed. Needs ``onnxruntime-gpu``; without the CUDA provider the
variant is reported as a failure, not silently run on the CPU.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.gpu_timing import Runner, throughput
from export.exporters.onnx import eager_attention

log = logging.getLogger("bench")
PROVIDER = "CUDAExecutionProvider"
Record = Callable[[str, str, int, int, dict[str, float]], None]


def export(module: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> list[str]:
    """fp32 ONNX of ``module`` with a dynamic batch axis; the input names."""
    names = [f"input_{i}" for i in range(len(inputs))]
    axes: dict[str, dict[int, str]] = {n: {0: "batch"} for n in names} | {"output": {0: "batch"}}
    with torch.no_grad(), eager_attention(module), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            inputs,
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["output"],
            dynamic_axes=axes,
            opset_version=17,
        )
    return names


def optimise(src: Path, dst_fp32: Path, dst_fp16: Path, *, transformer: bool) -> dict[str, int]:
    """The fp32 graph (fused for a transformer) and its fp16 conversion; fused-op counts."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.optimizer import optimize_model

    if transformer:
        logging.disable(logging.INFO)
        try:
            opt = optimize_model(str(src), model_type="bert", num_heads=12, hidden_size=384)
        finally:
            logging.disable(logging.NOTSET)
        fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
        opt.save_model_to_file(str(dst_fp32))
        opt.convert_float_to_float16(keep_io_types=True)
        opt.save_model_to_file(str(dst_fp16))
        return fused
    model = onnx.load(str(src))
    onnx.save(model, str(dst_fp32))
    onnx.save(convert_float_to_float16(model, keep_io_types=True), str(dst_fp16))
    return {}


def session_runner(path: Path, names: list[str], inputs: tuple[torch.Tensor, ...]) -> Runner:
    """One ORT session on the CUDA provider, inputs and output bound to GPU memory."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # TF32 off, as for eager fp32 (ORT's CUDA provider would otherwise use it for fp32 GEMMs).
    providers = [(PROVIDER, {"use_tf32": "0"})]
    session = ort.InferenceSession(str(path), options, providers=providers)
    if session.get_providers()[0] != PROVIDER:
        raise RuntimeError(f"session runs on {session.get_providers()}, not {PROVIDER}")
    binding = session.io_binding()
    bound = [t.contiguous() for t in inputs]  # kept alive with the runner
    for name, tensor in zip(names, bound, strict=True):
        binding.bind_input(
            name, "cuda", 0, _numpy_dtype(tensor), list(tensor.shape), tensor.data_ptr()
        )
    binding.bind_output("output", "cuda", 0)

    def run() -> object:
        session.run_with_iobinding(binding)
        return bound

    return run


def _numpy_dtype(tensor: torch.Tensor) -> Any:
    import numpy as np

    return {torch.float32: np.float32, torch.int64: np.int64, torch.float16: np.float16}[
        tensor.dtype
    ]


def bench_ort(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    *,
    batch: int,
    seq: int,
    transformer: bool,
    work: Path,
    record: Record,
    fail: Callable[[str, str], None],
) -> None:
    """Record ``onnxruntime-cuda`` in fp32 and fp16 for ``inputs`` (already on the GPU)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        fail("onnxruntime-cuda", f"onnxruntime is not installed: {exc}")
        return
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:  # CUDA and cuDNN from the nvidia-* wheels that torch also uses
        try:
            preload()
        except Exception:  # a missing library shows below as a failed session, with its reason
            log.exception("onnxruntime.preload_dlls failed")
    if PROVIDER not in ort.get_available_providers():
        fail("onnxruntime-cuda", f"{PROVIDER} not available: {ort.get_available_providers()}")
        return
    work.mkdir(parents=True, exist_ok=True)
    raw, fp32, fp16 = work / "raw.onnx", work / "fp32.onnx", work / "fp16.onnx"
    cpu_module = module.float().cpu().eval()
    names = export(cpu_module, tuple(t.cpu() for t in inputs), raw)
    fused = optimise(raw, fp32, fp16, transformer=transformer)
    log.info("ORT %s, fused %s", ort.__version__, fused or "-")
    for dtype, path in (("float32", fp32), ("float16", fp16)):
        try:
            timed = throughput(session_runner(path, names, inputs), batch)
        except Exception as exc:  # a failing variant is a result
            log.exception("onnxruntime-cuda %s failed", dtype)
            fail(f"onnxruntime-cuda-{dtype}", repr(exc)[:500])
            continue
        record("onnxruntime-cuda", dtype, batch, seq, timed | {"ort": ort.__version__})
