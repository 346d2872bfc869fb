"""Timing on a GPU: CUDA events around enough calls to run well past launch overhead."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Runner = Callable[[], object]


def timed_calls(run: Runner, calls: int) -> float:
    """Seconds that ``calls`` back-to-back calls of ``run`` take on the GPU (CUDA events)."""
    start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    start.record()
    for _ in range(calls):
        run()
    end.record()
    torch.cuda.synchronize()
    return float(start.elapsed_time(end)) / 1000


def throughput(run: Runner, batch: int, min_s: float = 0.5, warmup: int = 3) -> dict[str, float]:
    """Items per second and milliseconds per call of ``run`` (one batch of ``batch`` items)."""
    for _ in range(warmup):
        run()
    torch.cuda.synchronize()
    iters = 1
    while True:
        elapsed_s = timed_calls(run, iters)
        if elapsed_s >= min_s or iters >= 10_000:
            break
        iters = max(iters * 2, int(iters * min_s / max(elapsed_s, 1e-6) * 1.1))
    ms = 1000 * elapsed_s / iters
    return {"ms": round(ms, 4), "items_per_s": round(batch * iters / elapsed_s, 1), "iters": iters}


def cuda_graphed(fn: Callable[..., object], inputs: Sequence[torch.Tensor]) -> Runner:
    """``fn(*inputs)`` captured once as a CUDA graph; each call replays it (same input buffers)."""
    stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(3):
            fn(*inputs)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        out = fn(*inputs)

    def replay() -> object:
        graph.replay()
        return out

    return replay
