"""Raw tensors: ``{"inputs": [[...], ...]}`` in, ``{"outputs": [[...], ...]}`` out.

Each row must have the model's per-row shape (its input shape less the batch axis).
OIP v2: one numeric input tensor whose first axis is the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from handlers.errors import BadRequest
from handlers.manifest import Manifest
from handlers.oip import NUMERIC_DATATYPES, OipTensor, tensor_out
from handlers.tasks.base import TaskCodec
from handlers.tasks.body import json_object, native_inputs


class TensorCodec(TaskCodec):
    accepts = 'application/json {"inputs": [[...], ...]} or an OIP v2 body'

    def __init__(self, manifest: Manifest, model_dir: Path) -> None:
        super().__init__(manifest, model_dir)
        if len(manifest.inputs) != 1:
            raise ValueError("the tensor task serves models with exactly one input")
        self.row_shape = tuple(manifest.inputs[0].shape[1:])

    def decode_native(self, body: object) -> tuple[list[Any], bool]:
        obj = json_object(body)
        if obj is None:
            raise BadRequest('expected a JSON object {"inputs": [[...], ...]}')
        try:
            batch = torch.tensor(native_inputs(obj), dtype=torch.float32)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f'"inputs" must be a rectangular list of numbers: {exc}') from None
        return self._rows(batch), False

    def decode_oip(self, inputs: Sequence[OipTensor]) -> list[Any]:
        if len(inputs) != 1 or inputs[0].datatype not in NUMERIC_DATATYPES:
            raise BadRequest("this model takes exactly one numeric input tensor")
        tensor = inputs[0]
        try:
            flat = torch.tensor(tensor.data, dtype=torch.float32)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"input {tensor.name!r}: data must be numbers: {exc}") from None
        return self._rows(flat.reshape(tensor.shape))

    def _rows(self, batch: torch.Tensor) -> list[torch.Tensor]:
        if batch.dim() < 1 or tuple(batch.shape[1:]) != self.row_shape:
            raise BadRequest(
                f"each input row must have shape {list(self.row_shape)}, "
                f"got a batch of shape {list(batch.shape)}"
            )
        return list(batch.unbind(0))

    def example_rows(self) -> list[Any]:
        return [torch.zeros(self.row_shape), torch.ones(self.row_shape)]

    def collate(self, rows: Sequence[Any]) -> list[torch.Tensor]:
        return [torch.stack(list(rows))]

    def encode_native(self, out: torch.Tensor, single: bool) -> Any:
        return {"outputs": out.tolist()}

    def encode_oip(self, out: torch.Tensor) -> list[dict[str, Any]]:
        name = self.manifest.outputs[0].name
        return [tensor_out(name, "FP32", list(out.shape), out.flatten().tolist())]
