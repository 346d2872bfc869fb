"""Loading user weights: a safetensors file or a weights-only ``torch.save`` state dict."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from export.errors import SpecError


def load_state_dict(module: torch.nn.Module, path: Path) -> torch.nn.Module:
    if not path.is_file():
        raise SpecError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle errors vary; none may load arbitrary code
            raise SpecError(f"{path} is not a weights-only state dict: {exc}") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise SpecError(f"weights in {path} do not fit the model: {exc}") from None
    return module


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
