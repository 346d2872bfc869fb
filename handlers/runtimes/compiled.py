"""``torch.compile`` of the eager module, warm from the Inductor cache the export saved.

Load: rebuild the eager module (``spec_module``: the spec's code, safetensors weights), cast it
to the archive's precision, hand Inductor the export's cache artifacts
(``torch.compiler.load_cache_artifacts``) and wrap the module in ``torch.compile`` with the
export's options (``compile_settings``). The first call of each shape then finds its compiled
graph in the cache instead of compiling it.

A cache that cannot be used (another torch, corrupt bytes, another machine: see docs/export.md)
is never fatal: the worker compiles cold, which is slower to start but as correct, and says so
in its log (``missed the Inductor cache``). What the cache held is only ever read by Inductor
after the manifest's SHA-256 check of the archive.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch._dynamo.utils import counters

from handlers.runtimes.base import to_device
from handlers.runtimes.compile_settings import (
    DTYPES,
    CompileSettings,
    compile_options,
    machine_kind,
)
from handlers.runtimes.spec_module import build_module

log = logging.getLogger(__name__)


def inductor_cache_counts() -> tuple[int, int]:
    """Inductor FX graph cache hits and misses in this process so far."""
    inductor = counters["inductor"]
    return int(inductor["fxgraph_cache_hit"]), int(inductor["fxgraph_cache_miss"])


def load_cache(path: Path, settings: CompileSettings, device: torch.device) -> bool:
    """Hand the export's cache artifacts to Inductor; False (logged) when they cannot serve."""
    if settings.torch_version != torch.__version__ or settings.device_type != device.type:
        log.warning(
            "the Inductor cache was written by torch %s for %s; this worker runs torch %s on "
            "%s: compiling cold",
            settings.torch_version,
            settings.device_type,
            torch.__version__,
            device.type,
        )
        return False
    here = machine_kind(device)
    if settings.machine is not None and settings.machine != here:
        log.warning(
            "the Inductor cache was compiled for %s; this worker runs on %s: compiling cold",
            settings.machine,
            here,
        )
        return False
    if not path.is_file():  # only the export's own cold compile starts without one
        log.info("no Inductor cache: compiling cold")
        return False
    try:
        info = torch.compiler.load_cache_artifacts(path.read_bytes())
    except Exception as exc:  # corrupt or foreign bytes raise anything from any depth
        log.warning("the Inductor cache could not be read (%s): compiling cold", exc)
        return False
    if info is None:
        log.warning(
            "the Inductor cache %s could not be read (torch found it corrupt or empty): "
            "compiling cold",
            path.name,
        )
        return False
    log.info("Inductor cache loaded: %d compiled graph(s)", len(info.inductor_artifacts))
    return True


# The batch sizes a CUDA-graph worker runs at (vLLM's capture sizes, TensorRT's profiles do
# the same): at most one recorded graph each; a larger batch runs at its own size.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def batch_bucket(rows: int) -> int:
    return next((b for b in BATCH_BUCKETS if b >= rows), rows)


def pad_rows(args: list[torch.Tensor], size: int) -> list[torch.Tensor]:
    """Each input grown along its batch axis to ``size`` rows by repeating its last row (a
    valid input, unlike zeros: an all-zero attention mask can make NaNs); rows are computed
    independently and the extra ones are cut from the answer."""
    extra = size - args[0].shape[0]
    if extra <= 0:
        return args
    return [torch.cat([t, t[-1:].expand(extra, *t.shape[1:])]) for t in args]


class CompiledRuntime:
    format = "compile"

    def __init__(
        self,
        fn: Callable[..., object],
        device: torch.device,
        settings: CompileSettings,
        cache_loaded: bool,
    ) -> None:
        self.device = device
        self.settings = settings
        self.dtype = DTYPES[settings.precision]
        self.cache_loaded = cache_loaded  # False: the reason is logged, every graph is cold
        self.cache_hits = 0  # Inductor graphs this runtime found in the cache
        self.cache_misses = 0  # and those it compiled cold
        # CUDA graphs are recorded once per distinct input shape, and recording costs far
        # more than a replay: TorchServe's batches (and coalesced requests) come in every
        # size, so on a GPU the batch axis is padded up to a few bucket sizes.
        # Only where every input's batch axis (0) is dynamic: padding it is then a shape the
        # compiled graph already takes.
        self.pad_batches = device.type == "cuda" and all(0 in a for a in settings.dynamic_axes)
        self._fn = fn

    @classmethod
    def load(cls, artifact: Path, device: torch.device) -> CompiledRuntime:
        folder = artifact.parent
        settings = CompileSettings.read(artifact)
        module = build_module(
            folder / settings.spec_file, settings.spec_attr, folder / settings.weights
        )
        module = module.to(device=device, dtype=DTYPES[settings.precision])
        # True fp32, as the export verified it; these flags are part of Inductor's cache key
        # too (the export runs with them off: a worker with cuDNN's default TF32 would miss).
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        # One compiled model per process: what an earlier runtime compiled (the export reloads
        # several models in one process) would count against dynamo's recompile limit.
        torch.compiler.reset()
        loaded = load_cache(folder / settings.cache, settings, device)
        compiled = torch.compile(module, options=compile_options(device.type))
        return cls(compiled, device, settings, loaded)

    def run(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        args = [
            self._prepare(t, axes)
            for t, axes in zip(inputs, self.settings.dynamic_axes, strict=True)
        ]
        rows = args[0].shape[0] if args and args[0].dim() else 0
        if self.pad_batches and rows:
            args = pad_rows(args, batch_bucket(rows))
        hits, misses = inductor_cache_counts()
        started = time.perf_counter()
        # no_grad, not inference_mode: Inductor freezes parameters only with grad disabled,
        # and the export compiled under exactly this mode.
        with torch.no_grad():
            out = self._fn(*args)
        tensor = out if isinstance(out, torch.Tensor) else out[0]  # type: ignore[index]
        assert isinstance(tensor, torch.Tensor)
        self._count(hits, misses, started, [tuple(t.shape) for t in args])
        return tensor[:rows].float().cpu() if rows else tensor.float().cpu()

    def _prepare(self, tensor: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
        t = to_device(tensor, self.device)
        if t.is_floating_point():
            t = t.to(self.dtype)
        for axis in axes:
            torch._dynamo.maybe_mark_dynamic(t, axis)
        return t

    def _count(self, hits: int, misses: int, started: float, shapes: list[tuple[int, ...]]) -> None:
        new_hits, new_misses = inductor_cache_counts()
        self.cache_hits += new_hits - hits
        self.cache_misses += new_misses - misses
        if new_misses > misses:
            log.log(
                logging.WARNING if self.cache_loaded else logging.INFO,
                "%s for inputs %s: compiled %d graph(s) cold in %.1f s",
                "missed the Inductor cache" if self.cache_loaded else "no usable Inductor cache",
                shapes,
                new_misses - misses,
                time.perf_counter() - started,
            )
        elif new_hits > hits:
            log.info(
                "Inductor cache hit for inputs %s: %d graph(s) loaded in %.1f s",
                shapes,
                new_hits - hits,
                time.perf_counter() - started,
            )
