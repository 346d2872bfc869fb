"""The task codec interface.

A request decodes to a list of *rows* (one text, one image, one feature vector each). The
service concatenates the rows of every request in a TorchServe batch, ``collate`` turns them
into the model's input tensors for one forward pass, and the output rows are handed back to
each request's encoder.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from handlers.errors import BadRequest
from handlers.manifest import Manifest
from handlers.oip import OipTensor


class TaskCodec(ABC):
    # The request bodies a client may send, named for error messages.
    accepts: ClassVar[str] = 'application/json {"inputs": [...]} or an OIP v2 body'

    def __init__(
        self, manifest: Manifest, model_dir: Path, device: torch.device | None = None
    ) -> None:
        self.manifest = manifest
        self.model_dir = model_dir
        self.device = device if device is not None else torch.device("cpu")

    @abstractmethod
    def decode_native(self, body: object) -> tuple[list[Any], bool]:
        """Rows of a native body, and whether it was a single bare item (plain text, raw image)."""

    @abstractmethod
    def decode_oip(self, inputs: Sequence[OipTensor]) -> list[Any]:
        """Rows of an OIP v2 request."""

    @abstractmethod
    def example_rows(self) -> list[Any]:
        """A few valid rows, run once at load so the first client does not pay the warm-up."""

    def finish(self, rows: list[Any]) -> tuple[list[Any], dict[int, BadRequest]]:
        """The rows of a whole batch, finished together after every request is decoded (work
        that pays per batch, such as decoding images on the device), and the rows that failed
        there by position: only their own requests are refused."""
        return rows, {}

    @abstractmethod
    def collate(self, rows: Sequence[Any]) -> list[torch.Tensor]:
        """Model inputs for all rows of a batch, as one forward pass."""

    @abstractmethod
    def encode_native(self, out: torch.Tensor, single: bool) -> Any:
        """The native JSON answer for one request's output rows."""

    @abstractmethod
    def encode_oip(self, out: torch.Tensor) -> list[dict[str, Any]]:
        """OIP v2 output tensors for one request's output rows."""

    def truncated(self, rows: Sequence[Any]) -> list[int]:
        """Indices of rows the model sees only in part (texts past its window)."""
        return []


def make_codec(
    manifest: Manifest, model_dir: Path, device: torch.device | None = None
) -> TaskCodec:
    # Imported here so each worker loads only its own task's dependencies.
    if manifest.task == "text_embedding":
        from handlers.tasks.text_embedding import TextEmbeddingCodec

        return TextEmbeddingCodec(manifest, model_dir)
    if manifest.task == "text_classification":
        from handlers.tasks.text_classification import TextClassificationCodec

        return TextClassificationCodec(manifest, model_dir)
    if manifest.task == "image_classification":
        from handlers.tasks.image_classification import ImageClassificationCodec

        return ImageClassificationCodec(manifest, model_dir, device)
    from handlers.tasks.tensor import TensorCodec

    return TensorCodec(manifest, model_dir)
