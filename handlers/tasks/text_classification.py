"""Text classification: texts in (``handlers.tasks.texts``), top-k labels out
(``handlers.tasks.labels``). The model's output is one logit per label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from handlers.manifest import Manifest
from handlers.tasks.labels import TopK
from handlers.tasks.texts import TextCodec


class TextClassificationCodec(TextCodec):
    def __init__(self, manifest: Manifest, model_dir: Path) -> None:
        super().__init__(manifest, model_dir)
        config = manifest.task_config
        self.top_k = TopK(model_dir / config["labels"], int(config.get("top_k", 5)))

    def encode_native(self, out: torch.Tensor, single: bool) -> Any:
        return self.top_k.native(out, single)

    def encode_oip(self, out: torch.Tensor) -> list[dict[str, Any]]:
        return self.top_k.oip(out)
