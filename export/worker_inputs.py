"""Before anything is exported: the worker's own task codec, built from the spec's task settings
and files as an archive holds them, decodes requests into exactly the declared inputs.

The export itself never reads ``task_config``; the TorchServe worker does, at load. A spec for
an image or text task without its ``labels`` or ``tokenizer``, an image size other than the
model's input, or a token axis of fixed length would otherwise export, verify against eager on
tensors, and then fail in the worker (or only for some requests). Here the worker's code runs
on the export machine instead, and the spec is refused saying what to set.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from export.declared import expected_shape
from export.errors import SpecMismatch
from export.failure import summary
from export.package import tensor_info
from export.spec import BATCH, TEXT_TASKS, ModelSpec
from handlers.manifest import Manifest
from handlers.tasks import TaskCodec, make_codec

# task_config keys whose value is a file of the archive (read by handlers/tasks/).
FILE_KEYS = ("labels", "tokenizer")
FILES_HINT = "ModelSpec(extra_files=...), lightning_spec(files=...)"


def worker_codec(spec: ModelSpec, scratch: Path) -> TaskCodec:
    """The task codec a worker builds, over the spec's task files staged in ``scratch``."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    files = spec.extra_files(scratch)
    for name, source in files.items():
        if source.resolve() != (scratch / name).resolve():
            shutil.copyfile(source, scratch / name)
    for key in FILE_KEYS:
        named = spec.task_config.get(key)
        if named is not None and named not in files:
            raise SpecMismatch(
                f"task_config[{key!r}] names {named!r}, which is not among the files the spec "
                f"puts in the archive ({', '.join(files) or 'none'}; {FILES_HINT})"
            )
    manifest = Manifest(
        model=spec.name,
        format="eager",
        task=spec.task,
        artifact="",
        sha256={},
        task_config=spec.task_config,
        inputs=tuple(tensor_info(t) for t in spec.inputs),
        outputs=tuple(tensor_info(t) for t in spec.outputs),
    )
    try:
        return make_codec(manifest, scratch)
    except KeyError as exc:
        raise SpecMismatch(
            f"the {spec.task} worker reads task_config[{exc.args[0]!r}], which the spec does "
            f"not set (task_config: {sorted(spec.task_config) or 'empty'})"
        ) from None
    except Exception as exc:
        raise SpecMismatch(
            f"the {spec.task} worker cannot start with this spec's task_config and files: "
            f"{summary(exc)}"
        ) from exc


def check_worker_inputs(spec: ModelSpec, scratch: Path) -> None:
    """The worker's decoding of its example requests gives the declared inputs (``scratch``
    holds the task files while the codec loads them, and is removed)."""
    if spec.task in TEXT_TASKS:
        fixed = [t.name for t in spec.inputs if not any(isinstance(d, str) for d in t.shape[1:])]
        if fixed:
            raise SpecMismatch(
                f"{spec.task}: the worker pads the texts of a batch to the longest, so the "
                f"token axis of {', '.join(fixed)} must be dynamic: declare shapes such as "
                '("batch", "sequence") with a range for "sequence" in dims, and '
                "example_inputs that make any sequence length"
            )
    try:
        codec = worker_codec(spec, scratch)
        rows = codec.example_rows()
        tensors = codec.collate(rows)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sizes = {BATCH: len(rows)}
    got = ", ".join(_described(t) for t in tensors)
    declared = ", ".join(
        f"{t.name} {t.dtype} {['*' if d is None else d for d in expected_shape(t, sizes)]}"
        for t in spec.inputs
    )
    if len(tensors) != len(spec.inputs) or not all(
        _fits(t, expected_shape(d, sizes), d.dtype)
        for t, d in zip(tensors, spec.inputs, strict=True)
    ):
        raise SpecMismatch(
            f"the {spec.task} worker decodes {len(rows)} example requests into {got}; the spec "
            f"declares {declared} (at {BATCH}={len(rows)}): the model would be fed tensors "
            "other than those it was exported for"
        )


def _fits(tensor: torch.Tensor, want: list[int | None], dtype: str) -> bool:
    shape = list(tensor.shape)
    return (
        len(shape) == len(want)
        and all(w is None or w == g for w, g in zip(want, shape, strict=True))
        and str(tensor.dtype).removeprefix("torch.") == dtype
    )


def _described(tensor: torch.Tensor) -> str:
    return f"{str(tensor.dtype).removeprefix('torch.')} {list(tensor.shape)}"
