"""A local Hugging Face folder: what it holds and which servegate task it serves.

Only what transformers itself would load is read: ``config.json`` and safetensors weights (a
``pytorch_model.bin`` is a pickle and is refused), the fast tokenizer's ``tokenizer.json``, the
image processor's ``preprocessor_config.json`` and sentence-transformers' ``modules.json``.
Nothing is downloaded: every load is ``local_files_only``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from export.errors import SpecError
from export.spec import Task

SENTENCE_TRANSFORMERS = "modules.json"


@dataclass(frozen=True)
class HFFolder:
    path: Path

    @classmethod
    def open(cls, target: str) -> HFFolder:
        if "/" in target and not Path(target).exists() and target.count("/") == 1:
            raise SpecError(
                f"hf:{target}: no such folder. Only local folders are exported (nothing is "
                "downloaded); save the model with save_pretrained() and pass its folder"
            )
        path = Path(target)
        if not (path / "config.json").is_file():
            raise SpecError(f"hf:{target}: no config.json in {path} (a save_pretrained() folder)")
        if not any(path.glob("*.safetensors")):
            found = sorted(p.name for p in path.glob("*.bin"))
            extra = f" (found {', '.join(found)}: pickles, not loaded)" if found else ""
            raise SpecError(
                f"hf:{target}: no safetensors weights in {path}{extra}; save with "
                "save_pretrained(..., safe_serialization=True)"
            )
        return cls(path)

    @cached_property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = json.loads((self.path / "config.json").read_text())
        return config

    def json(self, name: str) -> dict[str, Any]:
        file = self.path / name
        return json.loads(file.read_text()) if file.is_file() else {}

    @property
    def architecture(self) -> str:
        return str((self.config.get("architectures") or ["?"])[0])

    def task(self) -> Task:
        """The task the folder serves, from what it holds (``--task`` overrides)."""
        if (self.path / SENTENCE_TRANSFORMERS).is_file():
            return "text_embedding"
        if self.architecture.endswith("ForSequenceClassification"):
            return "text_classification"
        if self.architecture.endswith("ForImageClassification"):
            return "image_classification"
        if self.architecture.endswith("ForCausalLM"):
            return "text_generation"
        raise SpecError(
            f"hf:{self.path}: cannot tell the task of a {self.architecture} folder; pass --task "
            "(TASK=) text_embedding, text_classification, image_classification or text_generation"
        )

    def labels(self) -> list[str]:
        id2label = self.config.get("id2label") or {}
        labels = [str(id2label.get(str(i), id2label.get(i, ""))) for i in range(len(id2label))]
        if not labels or "" in labels:
            raise SpecError(f"hf:{self.path}: config.json has no complete id2label")
        if len(set(labels)) != len(labels):
            raise SpecError(f"hf:{self.path}: id2label names a label twice: {labels}")
        return labels

    def tokenizer_file(self) -> Path:
        file = self.path / "tokenizer.json"
        if not file.is_file():
            raise SpecError(
                f"hf:{self.path}: no tokenizer.json; the worker tokenises with a fast "
                "tokenizer: save one with AutoTokenizer.from_pretrained(...).save_pretrained()"
            )
        return file
