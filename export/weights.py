"""Loading user weights: a safetensors file, a weights-only ``torch.save`` state dict, or a
Lightning checkpoint's ``state_dict`` (the LightningModule's attribute prefix stripped, e.g.
``model.`` when it wrapped the network as ``self.model``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from export.errors import SpecError


def load_state_dict(module: torch.nn.Module, path: Path) -> torch.nn.Module:
    if not path.is_file():
        raise SpecError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = _checkpoint_state(_load_weights_only(path), module)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise SpecError(f"weights in {path} do not fit the model: {exc}") from None
    return module


def _load_weights_only(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors vary; none may load arbitrary code
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise SpecError(
                f"{path} holds objects of classes that weights-only loading does not build: "
                f"{', '.join(unsafe)}. servegate never unpickles arbitrary classes; if you "
                f"trust these, name them: {' '.join(f'--allow-global {n}' for n in unsafe)} "
                f"(ALLOW_GLOBALS='{' '.join(unsafe)}')"
            ) from None
        raise SpecError(f"{path} is not a weights-only state dict: {exc}") from None


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a zip checkpoint at all: the caller's message says so
        return []


def _checkpoint_state(loaded: Any, module: torch.nn.Module) -> Any:
    """A Lightning checkpoint's ``state_dict``, with the prefix that makes it fit ``module``."""
    if not (isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict)):
        return loaded
    state: dict[str, Any] = loaded["state_dict"]
    wanted = set(module.state_dict())
    if set(state) == wanted:
        return state
    prefixes = {key[: i + 1] for key in state for i, c in enumerate(key) if c == "."}
    for prefix in sorted(prefixes, key=len):
        stripped = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if set(stripped) == wanted:
            return stripped
    return state  # load_state_dict names the missing and unexpected keys


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
