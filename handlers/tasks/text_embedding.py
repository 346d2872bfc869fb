"""Text embedding: texts in (``handlers.tasks.texts``), sentence embeddings out.

Answer: ``{"embeddings": [[...], ...]}`` in input order; OIP v2: the model's output tensor.
Whatever pooling and normalisation the model does is inside the exported artifact.
"""

from __future__ import annotations

from typing import Any

import torch

from handlers.oip import tensor_out
from handlers.tasks.texts import TextCodec, configured_tokenizer, encode_texts

__all__ = ["TextEmbeddingCodec", "configured_tokenizer", "encode_texts"]


class TextEmbeddingCodec(TextCodec):
    def encode_native(self, out: torch.Tensor, single: bool) -> Any:
        return {"embeddings": out.tolist()}

    def encode_oip(self, out: torch.Tensor) -> list[dict[str, Any]]:
        name = self.manifest.outputs[0].name
        return [tensor_out(name, "FP32", list(out.shape), out.flatten().tolist())]
