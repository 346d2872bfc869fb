"""Building a worker's ``GenerationService`` from an extracted, verified archive."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from handlers.errors import ArtifactError
from handlers.generation.cancel import CancelSignal
from handlers.generation.engine import Generator
from handlers.generation.placement import GenerationFormat, Placement, load_model
from handlers.generation.request import Limits, Parameters
from handlers.generation.service import GenerationService
from handlers.manifest import Manifest

log = logging.getLogger(__name__)

GENERATION_FORMATS: tuple[GenerationFormat, ...] = ("eager", "accelerate", "deepspeed_tp")
WARM_UP_PROMPT = "Hello"


def load_generation(
    manifest: Manifest, model_dir: Path, device: torch.device, name: str, version: str
) -> GenerationService:
    from transformers import AutoTokenizer

    if manifest.format not in GENERATION_FORMATS:
        raise ArtifactError(f"format {manifest.format} cannot serve text_generation")
    fmt: GenerationFormat = manifest.format  # type: ignore[assignment]
    folder = (model_dir / manifest.artifact).parent  # the artifact is the folder's config.json
    config = manifest.task_config
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    loaded = load_model(folder, fmt, Placement.of(config), device)
    limits = Limits.of(config)
    distributed = fmt == "deepspeed_tp"
    generator = Generator(
        loaded.model,
        tokenizer,
        loaded.input_device,
        limits.max_prompt_tokens,
        seed_source=rank0_seed if distributed else None,
    )
    generator.generate(WARM_UP_PROMPT, Parameters(max_new_tokens=2))  # first runs are slow
    log.info("loaded %s (%s, text_generation): %s", manifest.model, fmt, loaded.describe())
    service = GenerationService(
        generator,
        limits,
        name or manifest.model,
        version,
        cancel=_cancel_signal(distributed),
        agree=_rank0_flag if distributed else _same,
        resources=loaded,  # the offload folder lives as long as the service
    )
    return service


def _cancel_signal(distributed: bool) -> CancelSignal:
    # Only rank 0 looks for the marker (and removes it); the others follow its word.
    if distributed and os.environ.get("LOCAL_RANK", "0") != "0":
        return CancelSignal(None)
    return CancelSignal.from_env()


def _same(flag: bool) -> bool:
    return flag


def _rank0_flag(flag: bool) -> bool:
    return bool(_broadcast(int(flag)))


def rank0_seed(seed: int | None) -> int:
    chosen = seed if seed is not None else int(torch.randint(0, 2**62, (1,)).item())
    return _broadcast(chosen)


def _broadcast(value: int) -> int:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.long)
    if torch.cuda.is_available() and dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.broadcast(tensor, src=0)
    return int(tensor.item())
