"""The hardware ceiling of a figure: peak FLOP/s divided by the FLOPs of one inference.

FLOPs are counted by ``torch.utils.flop_counter`` (matrix products and convolutions; the
element-wise rest is a few percent), so the ceiling is what the tensor cores would allow if the
model were nothing but its matrix work.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

# NVIDIA H200 SXM datasheet, dense (no sparsity). bf16/fp16 on tensor cores; fp32 without TF32.
H200_PEAK_FLOPS = {"bfloat16": 989e12, "float16": 989e12, "tf32": 494e12, "float32": 67e12}


def flops_per_item(module: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> float:
    """FLOPs of one forward pass divided by the batch size (first axis of the first input)."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        module(*inputs)
    return float(counter.get_total_flops()) / inputs[0].shape[0]


def ceiling_per_s(flops: float, dtype: str, peaks: dict[str, float] = H200_PEAK_FLOPS) -> float:
    """Items per second at the peak rate of ``dtype``."""
    return peaks[dtype] / flops


def measured_matmul_peak(dtype: torch.dtype, n: int = 8192, iters: int = 10) -> float:
    """FLOP/s of an ``n``-cube matrix product on random data: the rate this GPU reaches."""
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    start.record()
    for _ in range(iters):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return float(2 * n**3 * iters / (start.elapsed_time(end) / 1000))
