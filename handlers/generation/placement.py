"""Loading a causal LM folder onto the worker's devices, by format.

- ``eager``: the whole model on the worker's device (one GPU, or the CPU).
- ``accelerate``: Accelerate places it (``device_map`` ``auto`` or ``balanced``, capped by
  ``max_memory``): layers that fit no GPU go to the CPU, the rest to disk (a temporary offload
  folder of this worker). One worker holds every device it is given.
- ``deepspeed_tp``: DeepSpeed AutoTP splits every linear layer across the ranks torchrun
  started (``tp_size`` = ``WORLD_SIZE``); no kernel injection (it fails with transformers 5).

Only safetensors are read (``use_safetensors=True``), never a pickle; nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from handlers.errors import ArtifactError

log = logging.getLogger(__name__)

GenerationFormat = Literal["eager", "accelerate", "deepspeed_tp"]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Placement:
    """How an archive asks to be placed (``task_config["placement"]``)."""

    dtype: str = "float32"
    device_map: Literal["auto", "balanced"] = "auto"
    # Accelerate's caps: device -> size ("0": "20GiB", "cpu": "2GiB"); empty: no cap.
    max_memory: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, config: dict[str, Any]) -> Placement:
        placement = dict(config.get("placement") or {})
        dtype = str(placement.get("dtype", "float32"))
        if dtype not in DTYPES:
            raise ArtifactError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
        device_map = placement.get("device_map", "auto")
        if device_map not in ("auto", "balanced"):
            raise ArtifactError(f"device_map must be auto or balanced, not {device_map!r}")
        memory = {str(k): str(v) for k, v in (placement.get("max_memory") or {}).items()}
        return cls(dtype=dtype, device_map=device_map, max_memory=memory)


@dataclass
class Loaded:
    model: Any
    input_device: torch.device  # where the prompt's ids go
    offload_dir: tempfile.TemporaryDirectory[str] | None = None

    def describe(self) -> str:
        device_map = getattr(self.model, "hf_device_map", None)
        if not device_map:
            return str(self.input_device)
        counts: dict[str, int] = {}
        for where in device_map.values():
            counts[str(where)] = counts.get(str(where), 0) + 1
        return ", ".join(f"{n} module(s) on {where}" for where, n in sorted(counts.items()))


def load_model(
    folder: Path, fmt: GenerationFormat, placement: Placement, device: torch.device
) -> Loaded:
    from transformers import AutoModelForCausalLM

    common: dict[str, Any] = {
        "dtype": DTYPES[placement.dtype],
        "use_safetensors": True,
        "local_files_only": True,
    }
    if fmt == "eager":
        model: Any = AutoModelForCausalLM.from_pretrained(folder, **common)
        return Loaded(model.to(device).eval(), device)
    if fmt == "accelerate":
        return _accelerate(folder, placement, common)
    if fmt == "deepspeed_tp":
        return _deepspeed_tp(folder, placement, common)
    raise ArtifactError(f"unknown generation format {fmt!r}")


def _accelerate(folder: Path, placement: Placement, common: dict[str, Any]) -> Loaded:
    from transformers import AutoModelForCausalLM

    offload = tempfile.TemporaryDirectory(prefix="servegate-offload-")
    memory: dict[int | str, str] = {
        (int(k) if k.isdigit() else k): v for k, v in placement.max_memory.items()
    }
    model: Any = AutoModelForCausalLM.from_pretrained(
        folder,
        device_map=placement.device_map,
        max_memory=memory or None,
        offload_folder=offload.name,
        **common,
    )
    model.eval()
    # transformers sets no hf_device_map when everything lands on one device (the CPU).
    placed = getattr(model, "hf_device_map", None) or {"": "cpu"}
    first = next(iter(placed.values()), "cpu")
    device = torch.device(f"cuda:{first}" if isinstance(first, int) else "cpu")
    return Loaded(model, device, offload)


def _deepspeed_tp(folder: Path, placement: Placement, common: dict[str, Any]) -> Loaded:
    # On the CPU, DeepSpeed's shared-memory collectives crash every rank unless LOCAL_SIZE
    # (its name for the ranks on this host) is set; torchrun sets only LOCAL_WORLD_SIZE.
    os.environ.setdefault("LOCAL_SIZE", os.environ.get("LOCAL_WORLD_SIZE", "1"))
    import deepspeed
    from transformers import AutoModelForCausalLM

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device(f"cuda:{rank}")
        torch.cuda.set_device(device)  # where DeepSpeed puts this rank's shard
    model: Any = AutoModelForCausalLM.from_pretrained(folder, **common)
    model.eval()
    engine = deepspeed.init_inference(
        model,
        tensor_parallel={"tp_size": world},
        dtype=DTYPES[placement.dtype],
        replace_with_kernel_inject=False,
    )
    log.info("DeepSpeed AutoTP: rank %d of %d on %s", rank, world, device)
    return Loaded(engine.module, device)
