"""What every text task shares: texts in, tokenised as the worker and the export both do.

Native body: ``{"inputs": ["text", ...]}`` or a plain-text body holding one text. OIP v2: one
``BYTES`` input. Texts are tokenised with the archive's ``tokenizer.json``, truncated to
``max_length`` tokens (as sentence-transformers and Hugging Face pipelines do) and padded to the
longest text of the whole TorchServe batch. A text cut to the window is not refused: the answer
says so (``truncated``, the indices of the texts the model saw only in part); see
``ModelService.encode``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Encoding, Tokenizer

from handlers.errors import BadRequest
from handlers.manifest import Manifest
from handlers.oip import OipTensor
from handlers.tasks.base import TaskCodec
from handlers.tasks.body import json_object, native_inputs


class TextCodec(TaskCodec):
    """Decoding and collation of texts; subclasses say what an answer is."""

    accepts = 'text/plain (one text), application/json {"inputs": ["text", ...]} or an OIP v2 body'

    def __init__(self, manifest: Manifest, model_dir: Path) -> None:
        super().__init__(manifest, model_dir)
        config = manifest.task_config
        self.max_length = int(config["max_length"])
        # Counts tokens (no truncation, no padding) to tell which texts were cut, for texts
        # that ``collate`` did not see; those it saw say so themselves (``_cut``).
        self.counter = Tokenizer.from_file(str(model_dir / config["tokenizer"]))
        self.counter.no_truncation()  # tokenizer.json may carry settings of its own
        self.counter.no_padding()
        self.tokenizer = configured_tokenizer(model_dir / config["tokenizer"], config)
        # Each text of the last batch collated (by identity, kept alive here): was it cut.
        self._cut: dict[int, tuple[object, bool]] = {}
        self.max_texts = int(config.get("max_texts_per_request", 1024))

    def decode_native(self, body: object) -> tuple[list[Any], bool]:
        obj = json_object(body)
        if obj is None:
            return [_as_text(body)], True
        texts = native_inputs(obj)
        return self._checked(texts), False

    def decode_oip(self, inputs: Sequence[OipTensor]) -> list[Any]:
        if len(inputs) != 1 or inputs[0].datatype != "BYTES":
            raise BadRequest("this model takes exactly one BYTES input tensor of texts")
        return self._checked(inputs[0].data)

    def _checked(self, texts: list[Any]) -> list[str]:
        if not all(isinstance(t, str) for t in texts):
            raise BadRequest('"inputs" must be a list of strings')
        if len(texts) > self.max_texts:
            raise BadRequest(f"at most {self.max_texts} texts per request, got {len(texts)}")
        return texts

    def example_rows(self) -> list[Any]:
        return ["warm-up", "a slightly longer warm-up sentence for the model"]

    def collate(self, rows: Sequence[Any]) -> list[torch.Tensor]:
        encodings = self.tokenizer.encode_batch(list(rows))
        # A truncated encoding keeps the rest of its text as ``overflowing``: the batch's own
        # tokenisation tells which texts were cut, without tokenising them a second time
        # (which cost a MiniLM worker on the H200 more than its model call).
        self._cut = {id(t): (t, bool(e.overflowing)) for t, e in zip(rows, encodings, strict=True)}
        return list(tensors_of(encodings))

    def truncated(self, rows: Sequence[Any]) -> list[int]:
        seen = [self._cut.get(id(t)) for t in rows]
        if all(s is not None and s[0] is t for s, t in zip(seen, rows, strict=True)):
            return [i for i, s in enumerate(seen) if s is not None and s[1]]
        counts = [len(e.ids) for e in self.counter.encode_batch(list(rows))]
        return [i for i, n in enumerate(counts) if n > self.max_length]


def configured_tokenizer(path: Path, task_config: dict[str, Any]) -> Tokenizer:
    """The archive's tokenizer as the worker runs it: truncated and padded per the task config
    (export's parity check on real sentences uses this same function)."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=int(task_config["max_length"]))
    tokenizer.enable_padding(pad_id=int(task_config["pad_id"]), pad_token=task_config["pad_token"])
    return tokenizer


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of a padded batch, as the worker feeds the model."""
    return tensors_of(tokenizer.encode_batch(list(texts)))


def tensors_of(encodings: Sequence[Encoding]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
    mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)
    return ids, mask


def _as_text(body: object) -> str:
    if isinstance(body, str):
        return body
    if isinstance(body, (bytes, bytearray)):
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("plain-text body is not valid UTF-8") from None
    raise BadRequest('expected a plain-text body or {"inputs": ["text", ...]}')
