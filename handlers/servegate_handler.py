"""The TorchServe handler packaged into every servegate ``.mar``.

TorchServe calls ``handle(None, context)`` once when a worker loads the model, then
``handle(batch, context)`` for each batch. The model is loaded (after its SHA-256 check)
on the worker's GPU when it has one, else on CPU.

Threads: a GPU worker's CPU work is per-request decoding and preprocessing, and TorchServe runs
several workers per machine; PyTorch's default of one intra-op thread per core in each of them
oversubscribes the cores (on the H200 machine this held ResNet-50 serving to ~1% of the raw
model, see docs/benchmarks.md). GPU workers therefore use ``SERVEGATE_TORCH_THREADS`` threads
(default 1); CPU workers keep PyTorch's default unless it is set.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from handlers.generation.service import GenerationService, Sender
from handlers.manifest import Manifest
from handlers.service import ModelService, WorkerContext

log = logging.getLogger(__name__)

_service: ModelService | GenerationService | None = None
THREADS_ENV = "SERVEGATE_TORCH_THREADS"


def worker_device(properties: dict[str, Any]) -> torch.device:
    gpu_id = properties.get("gpu_id")
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{int(gpu_id)}")
    return torch.device("cpu")


def worker_threads(device: torch.device) -> int | None:
    """Intra-op threads for this worker (None: PyTorch's default)."""
    configured = os.environ.get(THREADS_ENV)
    if configured:
        return max(1, int(configured))
    return 1 if device.type == "cuda" else None


def handle(data: list[dict[str, Any]] | None, context: WorkerContext) -> list[bytes] | None:
    global _service
    if _service is None:
        _service = _load(context)
    if data is None:
        return None
    if isinstance(_service, ModelService):
        return _service.handle(data, context)
    return _service.handle(data, context, _intermediate(context))


def _load(context: WorkerContext) -> ModelService | GenerationService:
    properties = context.system_properties
    model = getattr(context, "manifest", {}).get("model", {})
    name = str(model.get("modelName", ""))
    version = str(model.get("modelVersion", ""))
    model_dir = Path(properties["model_dir"])
    device = worker_device(properties)
    threads = worker_threads(device)
    if threads is not None:
        torch.set_num_threads(threads)
        log.info("%d intra-op thread(s) in this worker (%s)", threads, THREADS_ENV)
    manifest = Manifest.read(model_dir)
    if manifest.task != "text_generation":
        return ModelService.load(model_dir, device, name=name, version=version)
    manifest.verify(model_dir)
    from handlers.generation.load import load_generation

    return load_generation(manifest, model_dir, device, name, version)


def _intermediate(context: WorkerContext) -> Sender:
    """Sends one request's piece of a streamed answer now (TorchServe's intermediate
    response: a chunk of the HTTP answer, a message of the gRPC stream)."""
    from ts.handler_utils.utils import send_intermediate_predict_response

    request_ids: dict[int, str] = getattr(context, "request_ids", {})

    def send(idx: int, line: bytes) -> None:
        send_intermediate_predict_response(
            {idx: line}, {idx: request_ids[idx]}, "Intermediate Prediction success", 200, context
        )

    return send
