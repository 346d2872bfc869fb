"""Parity inputs are the same on every run and machine, and text tasks are checked on real text."""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from export.models import minilm
from export.parity_inputs import parity_cases, seeded_example
from export.registry import resolve
from export.sentences import SENTENCES
from export.spec import ModelSpec


def global_rng_inputs(sizes: Mapping[str, int]) -> tuple[torch.Tensor, ...]:
    """A user's spec that draws from the global generators, as examples often do."""
    noise = np.random.rand() + random.random()
    return (torch.randn(sizes["batch"], 4) + noise,)


def user_spec() -> ModelSpec:
    return resolve("mlp").model_copy(update={"example_inputs": global_rng_inputs})


def test_a_spec_drawing_from_global_generators_gets_the_same_inputs_every_time() -> None:
    spec = user_spec()
    first = seeded_example(spec, {"batch": 3})
    torch.manual_seed(1234)
    np.random.seed(99)
    second = seeded_example(spec, {"batch": 3})
    assert torch.equal(first[0], second[0])
    assert not torch.equal(first[0], seeded_example(spec, {"batch": 5})[0][:3])


def test_seeding_leaves_the_callers_generators_as_they_were() -> None:
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    expected = (torch.rand(1), np.random.rand(), random.random())
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    seeded_example(user_spec(), {"batch": 2})
    assert (torch.rand(1), np.random.rand(), random.random()) == expected


def test_text_tasks_are_checked_on_real_sentences_of_every_length(tmp_path: Path) -> None:
    cases = parity_cases(minilm.SPEC, tmp_path)
    text = [c for c in cases if "sentences" in c.label]
    random_ids = [c for c in cases if "sentences" not in c.label]
    assert len(random_ids) == len(minilm.SPEC.check_sizes())
    assert sum(len(c.inputs[0]) for c in text) >= len(SENTENCES)
    real_lengths = sorted(int(c.inputs[1].sum(1).max()) for c in text)
    # From a word or two up to the truncation limit the worker applies.
    assert real_lengths[0] < 16
    assert real_lengths[-1] == minilm.SPEC.task_config["max_length"]
    spans = [(int(c.inputs[1].sum(1).min()), int(c.inputs[1].sum(1).max())) for c in text]
    mixed = [(low, high) for low, high in spans if low < 8 and high > 200]
    assert mixed, "no batch pads a short sentence beside a long one"


def test_tasks_without_text_get_only_the_seeded_sizes(tmp_path: Path) -> None:
    spec = resolve("mlp")
    labels = [c.label for c in parity_cases(spec, tmp_path)]
    assert labels == [str(s) for s in spec.check_sizes()]
