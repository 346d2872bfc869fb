"""Before any format is exported: the spec's own code runs, and the model's tensors are what
the spec declares.

The declared ``inputs``/``outputs`` become the archive's manifest: the handler decodes requests
against them and ``GET /v2/models/<route>`` advertises them. A spec whose model returns
``[batch, 10]`` while it declares ``("batch", 5)`` would export and then serve something other
than it advertises, so a mismatch stops the export with the expected and actual shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import torch

from export.errors import ExportError, SpecCodeError, SpecMismatch
from export.failure import user_trace
from export.parity_inputs import seeded_example
from export.spec import ModelSpec, TensorSpec
from export.timing import BATCH_SIZES
from handlers.runtimes.eager import EagerRuntime

T = TypeVar("T")


def run_user_code(what: str, fn: Callable[..., T], *args: object) -> T:
    """Call the spec's code; an exception becomes ``SpecCodeError`` with the user's frames."""
    try:
        return fn(*args)
    except ExportError:
        raise
    except Exception as exc:
        raise SpecCodeError(f"{what} raised:\n{user_trace(exc)}") from exc


def expected_shape(declared: TensorSpec, sizes: Mapping[str, int]) -> list[int | None]:
    """The declared shape at these sizes; ``None`` for a named axis without a size (any)."""
    return [d if isinstance(d, int) else sizes.get(d) for d in declared.shape]


def mismatch(
    kind: str, declared: TensorSpec, tensor: object, sizes: Mapping[str, int]
) -> str | None:
    """Why ``tensor`` is not what ``declared`` says at these sizes, or None when it is."""
    if not isinstance(tensor, torch.Tensor):
        return f"{kind} {declared.name!r}: expected a tensor, got {type(tensor).__name__}"
    want = expected_shape(declared, sizes)
    got = list(tensor.shape)
    shape_ok = len(want) == len(got) and all(
        w is None or w == g for w, g in zip(want, got, strict=True)
    )
    dtype = str(tensor.dtype).removeprefix("torch.")
    if shape_ok and dtype == declared.dtype:
        return None
    shown = ", ".join(f"{n}={v}" for n, v in sizes.items())
    return (
        f"{kind} {declared.name!r}: declared shape {list(declared.shape)} dtype "
        f"{declared.dtype}, i.e. {['*' if w is None else w for w in want]} at {shown}; "
        f"the model gives {got} dtype {dtype}"
    )


def check_inputs(spec: ModelSpec, inputs: Sequence[object], sizes: Mapping[str, int]) -> None:
    if not isinstance(inputs, (tuple, list)) or len(inputs) != len(spec.inputs):
        count = len(inputs) if isinstance(inputs, (tuple, list)) else type(inputs).__name__
        raise SpecMismatch(
            f"example_inputs() must return a tuple of {len(spec.inputs)} tensor(s), one per "
            f"declared input, got {count}"
        )
    problems = [
        p
        for declared, tensor in zip(spec.inputs, inputs, strict=True)
        if (p := mismatch("input", declared, tensor, sizes))
    ]
    if problems:
        raise SpecMismatch(
            "the spec's inputs do not match example_inputs():\n  " + _lines(problems)
        )


def check_output(spec: ModelSpec, output: object, sizes: Mapping[str, int]) -> None:
    problem = mismatch("output", spec.outputs[0], output, sizes)
    if problem:
        raise SpecMismatch(f"the model's output does not match the spec:\n  {problem}")


def verify_declared(spec: ModelSpec, eager: EagerRuntime) -> None:
    """At the export sizes and every parity size: example_inputs() gives the declared inputs
    and the eager model the declared output. At the timing sizes only the inputs are made."""
    for sizes in (spec.sizes(), *spec.check_sizes()):
        inputs = run_user_code(f"example_inputs({sizes})", seeded_example, spec, sizes)
        check_inputs(spec, inputs, sizes)
        output = run_user_code(f"the model's forward at {sizes}", eager.run, inputs)
        check_output(spec, output, sizes)
    for batch in BATCH_SIZES:
        sizes = spec.sizes(batch=batch, **spec.timing_sizes)
        inputs = run_user_code(f"example_inputs({sizes})", seeded_example, spec, sizes)
        check_inputs(spec, inputs, sizes)


def _lines(problems: list[str]) -> str:
    return "\n  ".join(problems)
