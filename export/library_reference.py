"""What a model's own library answers for real client inputs: the reference that an exported
model, behind the worker's own decoding, must match (``export.library_parity``).

A source that knows the library (fast.ai's ``learn.predict``, sentence-transformers'
``encode``, a transformers pipeline) builds one: request bodies as a client sends them (image
bytes, texts) and the library's output for each, in the same space as the model's output after
``activation`` (logits -> ``softmax`` when the library answers probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Activation = Literal["identity", "softmax"]


@dataclass(frozen=True)
class LibraryCase:
    label: str
    bodies: tuple[bytes, ...]  # one request body per row, as a client sends it
    expected: torch.Tensor  # the library's answer, one row per body


@dataclass(frozen=True)
class LibraryReference:
    library: str  # named in the report and in errors, e.g. "fastai learn.predict"
    cases: tuple[LibraryCase, ...]
    activation: Activation = "identity"
    atol: float = 1e-4
