"""Inputs and outputs read off a module and its example tensors (Lightning's
``example_input_array``, a hub entrypoint's): the first axis is the batch, the others fixed,
and inputs of any batch size are drawn from the example's rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast, get_args

import torch

from export.errors import SpecError
from export.spec import BATCH, DType, TensorSpec


def tensor_specs(
    examples: tuple[torch.Tensor, ...],
    names: tuple[str, ...] | None = None,
    shapes: tuple[tuple[int | str, ...], ...] | None = None,
) -> tuple[TensorSpec, ...]:
    """One input per example tensor: its dtype, the batch axis first, the other axes fixed
    unless ``shapes`` names them."""
    names = names or tuple(
        "input" if len(examples) == 1 else f"input_{i}" for i in range(len(examples))
    )
    shapes = shapes or tuple(shape_of(t) for t in examples)
    return tuple(
        TensorSpec(name=n, dtype=dtype_of(t), shape=s)
        for n, t, s in zip(names, examples, shapes, strict=True)
    )


def shape_of(t: torch.Tensor) -> tuple[int | str, ...]:
    return (BATCH, *t.shape[1:])


def dtype_of(t: torch.Tensor) -> DType:
    name = str(t.dtype).removeprefix("torch.")
    if name not in get_args(DType):
        raise SpecError(f"dtype {name} is not served; one of {', '.join(get_args(DType))}")
    return cast(DType, name)


def resampled(examples: tuple[torch.Tensor, ...]) -> Any:
    """Inputs of any batch size from ``example_input_array``'s rows: rows drawn with a seed,
    floating-point ones moved by seeded noise so that no two rows are equal."""

    def example_inputs(sizes: Mapping[str, int]) -> tuple[torch.Tensor, ...]:
        batch = sizes[BATCH]
        gen = torch.Generator().manual_seed(batch)
        rows = torch.randint(0, examples[0].shape[0], (batch,), generator=gen)
        out = []
        for t in examples:
            picked = t[rows]
            if picked.is_floating_point():
                scale = float(t.float().std()) if t.numel() > 1 else 1.0
                noise = torch.randn(picked.shape, generator=gen) * 0.1 * max(scale, 1e-3)
                picked = picked + noise.to(picked.dtype)
            out.append(picked)
        return tuple(out)

    return example_inputs
