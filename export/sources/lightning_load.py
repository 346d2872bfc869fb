"""Load a LightningModule from its checkpoint with weights-only unpickling, and say what to do
when that fails.

- Hyperparameters holding a class (a dataclass, ``Path``, ``Namespace``) are globals that
  weights-only loading refuses: every one of them is named (torch's
  ``get_unsafe_globals_in_checkpoint``) with the ``--allow-global`` that admits it. Nothing ever
  falls back to full unpickling.
- A module whose ``save_hyperparameters()`` was never called cannot be rebuilt from the
  checkpoint alone (``__init__() missing ...``): its arguments come from ``--init-kwargs``.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from export.errors import SpecError
from export.sources.options import SourceOptions


def load_module(cls: type, options: SourceOptions, origin: Path | None) -> torch.nn.Module:
    ckpt = options.ckpt
    assert ckpt is not None
    if not ckpt.is_file():
        raise SpecError(f"checkpoint not found: {ckpt}")
    try:
        with allowed_globals(options, origin):
            module: torch.nn.Module = cls.load_from_checkpoint(  # type: ignore[attr-defined]
                str(ckpt), map_location="cpu", weights_only=True, **options.init_kwargs
            )
    except pickle.UnpicklingError:
        raise SpecError(_unsafe_globals_message(ckpt, options)) from None
    except TypeError as exc:
        if "__init__()" not in str(exc):
            raise
        raise SpecError(
            f"{cls.__name__}({exc}) cannot be rebuilt from {ckpt}: its save_hyperparameters() "
            "was never called, so the checkpoint holds no __init__ arguments. Pass them as "
            "--init-kwargs '{\"name\": value, ...}' (INIT_KWARGS=...)"
        ) from None
    return module


@contextmanager
def allowed_globals(options: SourceOptions, origin: Path | None = None) -> Iterator[None]:
    """Weights-only loading admits the ``--allow-global`` classes, and only while inside."""
    allowed: list[Any] = [import_global(name, origin) for name in options.allow_globals]
    with torch.serialization.safe_globals(allowed):
        yield


def import_global(name: str, origin: Path | None) -> type:
    """``pkg.mod.Name`` as the checkpoint names it, imported as Python would from ``origin``
    (the LightningModule file's folder: a class defined beside it was pickled under that name)
    or else the current directory."""
    module_name, _, attr = name.rpartition(".")
    if not module_name:
        raise SpecError(f"--allow-global {name!r}: expected a dotted pkg.mod.Name")
    where = str(origin or Path.cwd())
    added = where not in sys.path
    if added:
        sys.path.insert(0, where)
    try:
        value = getattr(importlib.import_module(module_name), attr, None)
    except ImportError as exc:
        raise SpecError(
            f"--allow-global {name}: cannot import {module_name} from {where}: {exc}"
        ) from None
    finally:
        if added:
            sys.path.remove(where)
    if not isinstance(value, type):
        raise SpecError(f"--allow-global {name}: {module_name} has no class {attr}")
    return value


def _unsafe_globals_message(ckpt: Path, options: SourceOptions) -> str:
    names = [
        n
        for n in torch.serialization.get_unsafe_globals_in_checkpoint(str(ckpt))
        if n not in options.allow_globals
    ]
    flags = " ".join(f"--allow-global {n}" for n in names)
    return (
        f"{ckpt} holds objects of classes that weights-only loading does not build: "
        f"{', '.join(names)} (usually hyperparameters saved by save_hyperparameters()). "
        f"servegate never unpickles arbitrary classes; if you trust these, name them: {flags} "
        f"(ALLOW_GLOBALS='{' '.join(names)}')"
    )
