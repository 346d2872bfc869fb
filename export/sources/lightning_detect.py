"""Is an object a LightningModule class (or a ``lightning_spec``), without importing Lightning?

``lightning.pytorch.LightningModule`` and ``pytorch_lightning.LightningModule`` are two class
hierarchies (the unified package and the standalone one); a user's module derives from one of
them. Both are recognised by the defining module of a class in the MRO.
"""

from __future__ import annotations

LIGHTNING_ROOTS = ("lightning.pytorch", "pytorch_lightning")


def lightning_root(cls: type) -> str | None:
    """``lightning.pytorch`` or ``pytorch_lightning``: the hierarchy ``cls`` derives from."""
    for base in cls.__mro__:
        if base.__name__ == "LightningModule":
            for root in LIGHTNING_ROOTS:
                if base.__module__ == root or base.__module__.startswith(root + "."):
                    return root
    return None


def is_lightning(value: object) -> bool:
    from export.sources.lightning_spec import LightningSpec

    if isinstance(value, LightningSpec):
        return True
    return isinstance(value, type) and lightning_root(value) is not None
