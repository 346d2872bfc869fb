"""TorchServe's stock ``BaseHandler`` as the baseline of ``bench.serving``: its own model loading
(``torch.jit.load``), inference and metrics, with only what any JSON model needs added (decode
``{"inputs": rows}``, encode one answer per request) and its handler time in the same response
header as servegate's handler, so both overheads are measured alike. Packaged as a handler
file; runs inside a TorchServe worker."""

from __future__ import annotations

import json
import time
from typing import Any

import torch
from ts.torch_handler.base_handler import BaseHandler


class StockHandler(BaseHandler):  # type: ignore[misc]
    def preprocess(self, data: list[dict[str, Any]]) -> torch.Tensor:
        rows = []
        for request in data:
            body: Any = request.get("body") or request.get("data")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body)
            rows.extend(body["inputs"])
        return torch.tensor(rows, dtype=torch.float32)

    def postprocess(self, data: torch.Tensor) -> list[str]:
        return [json.dumps({"outputs": [row]}) for row in data.tolist()]

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[str]:
        started = time.perf_counter()
        out: list[str] = super().handle(data, context)
        elapsed = f"{(time.perf_counter() - started) * 1000:.3f}"
        for idx in range(len(data)):
            context.set_response_header(idx, "x-servegate-handler-ms", elapsed)
        return out


_service = StockHandler()


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[str] | None:
    if not _service.initialized:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
