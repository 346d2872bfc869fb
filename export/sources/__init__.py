"""Models in their own ecosystem's format, turned into a ``ModelSpec`` at export time.

One module (or package) per source, each with a ``spec(target, options)`` function:

- ``hf:path/to/dir``: a Hugging Face folder (``export.sources.hf``);
- ``hub:path/to/repo:entrypoint``: a local torch.hub repository (``export.sources.hub``);
- ``fastai:export.pkl``: a fast.ai ``Learner`` export, behind ``--trust-pickle``
  (``export.sources.fastai``);
- ``path/module.py:LightningModuleClass`` with ``--ckpt``: a Lightning checkpoint
  (``export.sources.lightning``; reached from ``export.registry`` when the attribute is a
  LightningModule class or a ``lightning_spec``).

The ecosystem libraries are imported only here and only at export time: archives hold
TorchScript, AOTInductor or ONNX artifacts and the servegate handler, never a pickle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from export.sources.options import SourceOptions
from export.spec import ModelSpec

SourceFn = Callable[[str, SourceOptions], ModelSpec]

# MODEL prefix -> module whose ``spec`` function reads that source.
PREFIXES = {
    "hf": "export.sources.hf",
    "hub": "export.sources.hub",
    "fastai": "export.sources.fastai",
}


def source_for(model: str) -> tuple[SourceFn, str] | None:
    """The source function for ``prefix:rest`` and ``rest``, or None for any other MODEL."""
    prefix, sep, rest = model.partition(":")
    if not sep or prefix not in PREFIXES:
        return None
    fn: SourceFn = importlib.import_module(PREFIXES[prefix]).spec
    return fn, rest


__all__ = ["PREFIXES", "SourceOptions", "source_for"]
