"""The ``compile`` format's two fresh processes: one compiles cold and saves Inductor's cache
artifacts, the other starts as a worker does (an empty Inductor cache, the artifacts loaded)
and counts its cache hits. Each gets an Inductor cache directory of its own, so that neither
finds what the other (or an earlier export) left on disk.

Both rebuild the module from the packaged files only (``handlers.runtimes.compiled``), so what
they compile is what a worker compiles.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

CHILD_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class ChildResult:
    seconds: float  # compiling (cold) or loading the cache and compiling (warm) every shape
    cache_hits: int
    cache_misses: int
    error: str | None = None


def run_child(
    mode: str, artifact: Path, device: str, batch_sizes: tuple[int, ...], cache_dir: Path
) -> ChildResult:
    """Run ``_child`` in a spawned process; its result, or an error saying why there is none."""
    result_file = cache_dir.with_suffix(".json")
    result_file.unlink(missing_ok=True)
    ctx = multiprocessing.get_context("spawn")
    job = ChildJob(mode, str(artifact), device, batch_sizes, str(cache_dir), str(result_file))
    child = ctx.Process(target=_child, args=(job,))
    child.start()
    child.join(CHILD_TIMEOUT_S)
    if child.is_alive():
        child.kill()
        child.join()
        return ChildResult(0.0, 0, 0, f"the {mode} compile took over {CHILD_TIMEOUT_S:.0f} s")
    if not result_file.is_file():
        return ChildResult(0.0, 0, 0, f"the {mode} compile's process died (exit {child.exitcode})")
    return ChildResult(**json.loads(result_file.read_text()))


@dataclass(frozen=True)
class ChildJob:
    mode: str  # "cold": compile and save the artifacts; "warm": load them, count hits
    artifact: str
    device: str
    batch_sizes: tuple[int, ...]
    cache_dir: str
    result_file: str


def _child(job: ChildJob) -> None:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = job.cache_dir  # read by Inductor at each use
    try:
        result = _compile(job.mode, Path(job.artifact), job.device, job.batch_sizes)
    except Exception as exc:
        result = ChildResult(0.0, 0, 0, "".join(traceback.format_exception(exc)))
    Path(job.result_file).write_text(json.dumps(asdict(result)))


def _compile(mode: str, artifact: Path, device: str, batch_sizes: tuple[int, ...]) -> ChildResult:
    import torch

    from export.parity_inputs import seeded_example
    from handlers.runtimes.compile_settings import CompileSettings
    from handlers.runtimes.compiled import CompiledRuntime
    from handlers.runtimes.spec_module import import_spec_file

    settings = CompileSettings.read(artifact)
    spec = import_spec_file(artifact.parent / settings.spec_file, settings.spec_attr)
    started = time.perf_counter()
    runtime = CompiledRuntime.load(artifact, torch.device(device))
    for batch in batch_sizes:
        runtime.run(seeded_example(spec, spec.sizes(batch=batch)))
    seconds = time.perf_counter() - started
    if mode == "cold":
        saved = torch.compiler.save_cache_artifacts()
        if saved is None:
            raise RuntimeError("Inductor recorded no cache artifacts to save")
        (artifact.parent / settings.cache).write_bytes(saved[0])
    return ChildResult(round(seconds, 2), runtime.cache_hits, runtime.cache_misses)
