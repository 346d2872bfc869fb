"""The eager module of a ``compile`` archive, rebuilt from the spec's own code and its weights.

The archive carries the Python file that defines the model's ``ModelSpec`` (the same code the
export ran) and a safetensors state dict. The worker imports the file, calls the spec's
``build(None)`` for the module's structure and loads the weights over it with
``safetensors`` (strict: every tensor must fit): weights are never unpickled.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model

from handlers.errors import ArtifactError


def import_spec_file(path: Path, attr: str) -> Any:
    """The attribute ``attr`` of the Python file ``path``, imported under a name of its own."""
    name = (
        f"servegate_compiled_spec_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
    )
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ArtifactError(f"cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # classes defined in it must resolve their module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    value = getattr(module, attr, None)
    if value is None or not callable(getattr(value, "build", None)):
        raise ArtifactError(f"{path.name} has no model spec named {attr!r}")
    return value


def build_module(spec_file: Path, attr: str, weights: Path) -> torch.nn.Module:
    """The spec's module with the archive's weights, in eval mode."""
    module = import_spec_file(spec_file, attr).build(None)
    if not isinstance(module, torch.nn.Module):
        raise ArtifactError(f"{attr}.build(None) returned {type(module).__name__}, not a module")
    load_model(module, str(weights), strict=True)
    return module.eval()
