"""A LightningModule class and its checkpoint (``MODEL=path/module.py:MyModule --ckpt m.ckpt``).

The module comes from ``load_from_checkpoint(..., weights_only=True)`` (``lightning_load``);
its inputs from ``example_input_array`` (first axis ``batch``), its output from one forward
pass; the task is ``tensor`` unless a ``lightning_spec`` says otherwise. Both Lightning class
hierarchies (``lightning.pytorch`` and ``pytorch_lightning``) are read the same way.

``torch.jit.trace`` of a LightningModule probes its ``trainer`` property, which raises "... is
not attached to a `Trainer`" outside ``fit``. Lightning's own ``to_torchscript`` sets
``_jit_is_scripting`` for that; the module built here has it set for the whole export, which
only turns that check off.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, cast

import torch

from export.errors import SpecError
from export.sources.examples import dtype_of, resampled, shape_of, tensor_specs
from export.sources.lightning_detect import lightning_root
from export.sources.lightning_load import load_module
from export.sources.lightning_spec import LightningSpec
from export.sources.options import SourceOptions, archive_name
from export.spec import BATCH, DimRange, ModelSpec, TensorSpec


def spec_from_module(value: object, options: SourceOptions, model: str) -> ModelSpec:
    described = (
        value if isinstance(value, LightningSpec) else LightningSpec(module=cast(type, value))
    )
    cls = described.module
    root = lightning_root(cls)
    if root is None:
        raise SpecError(f"{model}: {cls.__name__} is not a LightningModule")
    if options.ckpt is None:
        raise SpecError(
            f"{model}: {cls.__name__} is a {root}.LightningModule; pass its checkpoint with "
            "--ckpt (CKPT=model.ckpt)"
        )
    module = load_module(cls, options, Path(inspect.getfile(cls)).parent).eval()
    module.__dict__["_jit_is_scripting"] = True  # see the module docstring
    examples = _examples(module, described, model)
    with torch.no_grad():
        out = module(*examples)
    if not isinstance(out, torch.Tensor):
        raise SpecError(
            f"{model}: forward returns {type(out).__name__}; servegate serves one output tensor"
        )
    inputs = tensor_specs(examples, described.input_names, described.shapes)
    if described.task == "tensor" and len(inputs) != 1:
        raise SpecError(f"{model}: the tensor task takes one input; the model takes {len(inputs)}")

    def build(weights: Path | None) -> torch.nn.Module:
        if weights is not None:
            raise SpecError("--weights and --ckpt both given: the checkpoint holds the weights")
        return module

    return ModelSpec(
        name=archive_name(options, described.name or cls.__name__),
        task=options.task or described.task,
        build=build,
        example_inputs=described.example_inputs or resampled(examples),
        inputs=inputs,
        outputs=(TensorSpec(name=described.output_name, dtype=dtype_of(out), shape=shape_of(out)),),
        dims={BATCH: DimRange(), **described.dims},
        tolerance=described.tolerance,
        task_config=_task_config(described),
        extra_files=lambda scratch: _files(described, scratch),
        serving=described.serving,
    )


def _examples(module: torch.nn.Module, described: LightningSpec, model: str) -> tuple[Any, ...]:
    if described.example_inputs is not None:
        sizes = {name: r.export for name, r in {BATCH: DimRange(), **described.dims}.items()}
        return described.example_inputs(sizes)
    example = getattr(module, "example_input_array", None)
    if isinstance(example, torch.Tensor):
        return (example,)
    if isinstance(example, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in example):
        return tuple(example)
    raise SpecError(
        f"{model}: set self.example_input_array (a tensor or a tuple of tensors, first axis "
        f"the batch) in __init__, or give lightning_spec(example_inputs=...); found "
        f"{type(example).__name__}"
    )


def _task_config(described: LightningSpec) -> dict[str, Any]:
    config = dict(described.task_config)
    if described.labels is not None:
        config.setdefault("labels", "labels.json")
    return config


def _files(described: LightningSpec, scratch: Path) -> dict[str, Path]:
    files = dict(described.files)
    if described.labels is not None:
        labels = scratch / "labels.json"
        labels.write_text(json.dumps(list(described.labels)))
        files["labels.json"] = labels
    return files
