"""Classification answers: the top-k labels of each output row with their probabilities.

Native: one ``[{"label", "probability"}, ...]`` list per row (a bare list for a single item).
OIP v2: outputs ``label`` (BYTES) and ``probability`` (FP32), both ``[n, k]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from handlers.oip import tensor_out


class TopK:
    def __init__(self, labels_file: Path, top_k: int) -> None:
        self.labels: list[str] = json.loads(labels_file.read_text())
        self.k = min(top_k, len(self.labels))

    def _top(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs = torch.softmax(logits.float(), dim=-1)
        return probs.topk(self.k, dim=-1)

    def native(self, out: torch.Tensor, single: bool) -> Any:
        values, indices = self._top(out)
        answers = [
            [
                {"label": self.labels[i], "probability": p}
                for p, i in zip(row_p.tolist(), row_i.tolist(), strict=True)
            ]
            for row_p, row_i in zip(values, indices, strict=True)
        ]
        return answers[0] if single else answers

    def oip(self, out: torch.Tensor) -> list[dict[str, Any]]:
        values, indices = self._top(out)
        labels = [self.labels[i] for i in indices.flatten().tolist()]
        shape = list(values.shape)
        return [
            tensor_out("label", "BYTES", shape, labels),
            tensor_out("probability", "FP32", shape, values.flatten().tolist()),
        ]
