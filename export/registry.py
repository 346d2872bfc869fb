"""Resolve ``MODEL=``: a built-in name, a source prefix (``hf:``, ``hub:``, ``fastai:``, see
``export.sources``), a spec file (``path.py`` or ``path.py:attr``) or ``package.module:attr``.
The attribute is a ``ModelSpec``, or a LightningModule class (or ``lightning_spec``) read with
``--ckpt``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path

from export.errors import SpecCodeError, SpecError, UnknownModel
from export.failure import user_trace
from export.sources import PREFIXES, source_for
from export.sources.options import SourceOptions
from export.spec import ModelSpec

BUILTINS = {
    "mlp": "export.models.mlp",
    "minilm": "export.models.minilm",
    "resnet18": "export.models.resnet18",
    "resnet50": "export.models.resnet50",
}
DEFAULT_ATTR = "SPEC"


def resolve(model: str, options: SourceOptions | None = None) -> ModelSpec:
    options = options or SourceOptions()
    source = source_for(model)
    if source is not None:
        read, target = source
        return read(target, options)
    if model in BUILTINS:
        return _as_spec(importlib.import_module(BUILTINS[model]), DEFAULT_ATTR, model, options)
    target, _, attr = model.partition(":")
    if target.endswith(".py"):
        return _as_spec(_import_file(Path(target)), attr or DEFAULT_ATTR, model, options)
    if attr:
        return _as_spec(_import_module(target), attr, model, options)
    raise UnknownModel(
        f"unknown model {model!r}. Built-in models: {', '.join(sorted(BUILTINS))}; "
        "or give a spec as path/to/spec.py[:ATTR] or package.module:ATTR, "
        f"or a source: {', '.join(f'{p}:...' for p in PREFIXES)} (see docs/export.md)"
    )


def _as_spec(module: object, attr: str, model: str, options: SourceOptions) -> ModelSpec:
    from export.sources import lightning_detect

    value = getattr(module, attr, None)
    if lightning_detect.is_lightning(value):
        from export.sources.lightning import spec_from_module

        return spec_from_module(value, options, model)
    if options.ckpt is not None:
        raise SpecError(
            f"{model}: --ckpt (CKPT=) reads a LightningModule class or lightning_spec(...), "
            f"found {type(value).__name__}; with a ModelSpec pass the checkpoint as "
            "--weights (WEIGHTS=): its state_dict is loaded"
        )
    return _attr(module, attr, model)


def _import_module(target: str) -> object:
    """``package.module`` as Python would import it run from the current directory (the
    ``servegate`` script's own directory is first on ``sys.path``, the cwd is not)."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(1, cwd)
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name is None or not target.startswith(exc.name):
            raise SpecCodeError(f"importing {target!r} failed:\n{user_trace(exc)}") from None
        raise SpecError(
            f"cannot import {target!r} ({exc}); module paths are relative to the current "
            f"directory ({cwd}) or the installed packages"
        ) from None
    except Exception as exc:
        raise SpecCodeError(f"importing {target!r} failed:\n{user_trace(exc)}") from None


def _import_file(path: Path) -> object:
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    name = f"servegate_spec_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    if spec is None or spec.loader is None:
        raise SpecError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SpecCodeError(f"spec file {path} failed to import:\n{_trace(exc, path)}") from None
    return module


def _attr(module: object, attr: str, model: str) -> ModelSpec:
    value = getattr(module, attr, None)
    if not isinstance(value, ModelSpec):
        found = type(value).__name__ if value is not None else "nothing"
        raise SpecError(f"{model}: expected a servegate ModelSpec named {attr!r}, found {found}")
    return value


def _trace(exc: BaseException, origin: Path) -> str:
    """The spec's own traceback, from its first frame on (no importlib frames)."""
    frames = traceback.extract_tb(exc.__traceback__)
    resolved = str(origin.resolve())
    first = next((i for i, f in enumerate(frames) if f.filename == resolved), 0)
    frames = traceback.StackSummary.from_list(frames[first:])
    lines = ["Traceback (most recent call last):", *traceback.format_list(frames)]
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines).rstrip()
