"""The inputs parity is checked on: the same on every run and every machine.

- ``seeded_example``: the spec's ``example_inputs`` at given sizes under a seed derived from the
  sizes, so a spec that draws from a global generator (torch, numpy or ``random``) still gets
  the same inputs everywhere, and the caller's generators are left as they were.
- ``parity_cases``: seeded inputs at every check size, plus, for text tasks, real sentences
  tokenised exactly as the worker tokenises them (``export.sentences``).
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from export.sentences import SENTENCES
from export.spec import TEXT_TASKS, ModelSpec
from handlers.tasks.texts import configured_tokenizer, encode_texts

SENTENCE_BATCH = 8


@dataclass(frozen=True)
class Case:
    label: str
    inputs: tuple[torch.Tensor, ...]


def seeded_example(spec: ModelSpec, sizes: Mapping[str, int]) -> tuple[torch.Tensor, ...]:
    with _seeded(zlib.crc32(json.dumps(sorted(sizes.items())).encode())):
        return spec.example_inputs(sizes)


def parity_cases(spec: ModelSpec, scratch: Path) -> list[Case]:
    cases = [Case(str(sizes), seeded_example(spec, sizes)) for sizes in spec.check_sizes()]
    if spec.task in TEXT_TASKS:
        cases += sentence_cases(spec, scratch)
    return cases


def sentence_cases(spec: ModelSpec, scratch: Path) -> list[Case]:
    """Batches of sentences of similar length (shortest to longest), and one batch mixing the
    shortest with the longest so that padding inside a batch is checked on real text."""
    config = spec.task_config
    tokenizer = configured_tokenizer(spec.extra_files(scratch)[config["tokenizer"]], config)
    lengths = {s: len(tokenizer.encode(s).ids) for s in SENTENCES}
    ordered = sorted(SENTENCES, key=lengths.__getitem__)
    batches = [ordered[i : i + SENTENCE_BATCH] for i in range(0, len(ordered), SENTENCE_BATCH)]
    batches.append(ordered[:2] + ordered[-2:])
    cases = []
    for texts in batches:
        inputs = encode_texts(tokenizer, texts)
        low, high = lengths[texts[0]], lengths[texts[-1]]
        label = f"{len(texts)} sentences of {min(low, high)}-{max(low, high)} tokens"
        cases.append(Case(label, inputs))
    return cases


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
