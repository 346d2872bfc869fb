"""Where the GPU time of one configuration goes: ``torch.profiler`` over a few calls."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bench.gpu_timing import Runner, timed_calls


def profile_to(run: Runner, out: Path, calls: int = 5) -> float:
    """Write the top kernels by GPU time to ``out``; return the GPU-busy share of wall time."""
    run()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        wall_us = timed_calls(run, calls) * 1e6
    events = prof.key_averages()
    kernel_us = sum(e.device_time_total for e in events if e.device_type.name == "CUDA")
    busy = kernel_us / wall_us if wall_us else 0.0
    table = events.table(sort_by="device_time_total", row_limit=20)
    out.write_text(f"GPU busy {busy:.1%} of {wall_us / calls:.0f} us per call\n{table}\n")
    return busy
