"""Greedy generation as a worker runs it, against transformers' ``model.generate`` alone.

The prompts are real sentences of several lengths and seeded random token ids; each must give
the same tokens, one by one, for ``TOKENS`` new tokens. Sampling is not compared: its parity
follows from equal logits, which greedy decoding checks at every step.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from export.sentences import SENTENCES

TOKENS = 16
SEED = 0


@dataclass(frozen=True)
class TokenParity:
    ok: bool
    prompts: int
    reason: str | None = None


def parity_prompts(tokenizer: Any, count: int = 2, max_tokens: int = 32) -> list[str]:
    """Real sentences (short, medium, long) and text decoded from seeded random token ids."""
    chosen = [SENTENCES[0], SENTENCES[8], SENTENCES[13]]
    rng = random.Random(SEED)
    special = set(tokenizer.all_special_ids)
    vocab = [i for i in range(len(tokenizer)) if i not in special]
    for length in (4, max_tokens // 2)[:count]:
        ids = [rng.choice(vocab) for _ in range(length)]
        chosen.append(str(tokenizer.decode(ids)))
    return [p for p in chosen if len(tokenizer(p)["input_ids"]) <= max_tokens]


def reference_tokens(folder: Path, prompts: Sequence[str], tokens: int = TOKENS) -> list[list[int]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(
        folder, local_files_only=True, use_safetensors=True
    )
    model.eval()
    out = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
            gen = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=tokens,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
            out.append([int(t) for t in gen[0, ids.shape[1] :].tolist()])
    return out


def compare(
    prompts: Sequence[str], expected: Sequence[list[int]], actual: Sequence[list[int]]
) -> TokenParity:
    for prompt, want, got in zip(prompts, expected, actual, strict=True):
        if want != got:
            at = next((i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), None)
            where = f"token {at}" if at is not None else f"length {len(got)} vs {len(want)}"
            return TokenParity(False, len(prompts), f"prompt {prompt[:40]!r} differs at {where}")
    return TokenParity(True, len(prompts))


def run_prompts(generate: Callable[[str], list[int]], prompts: Sequence[str]) -> list[list[int]]:
    return [generate(p) for p in prompts]
