"""The TorchServe handler packaged into every servegate ``.mar``.

TorchServe calls ``handle(None, context)`` once when a worker loads the model, then
``handle(batch, context)`` for each batch. The model is loaded (after its SHA-256 check)
on the worker's GPU when it has one, else on CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from handlers.service import ModelService, WorkerContext

log = logging.getLogger(__name__)

_service: ModelService | None = None


def worker_device(properties: dict[str, Any]) -> torch.device:
    gpu_id = properties.get("gpu_id")
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{int(gpu_id)}")
    return torch.device("cpu")


def handle(data: list[dict[str, Any]] | None, context: WorkerContext) -> list[bytes] | None:
    global _service
    if _service is None:
        properties = context.system_properties
        model = getattr(context, "manifest", {}).get("model", {})
        _service = ModelService.load(
            Path(properties["model_dir"]),
            worker_device(properties),
            name=str(model.get("modelName", "")),
            version=str(model.get("modelVersion", "")),
        )
    if data is None:
        return None
    return _service.handle(data, context)
