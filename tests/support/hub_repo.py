"""A local torch.hub repository made in the test: ``hubconf.py`` with one entrypoint whose
``pretrained=True`` reads ``tinynet.pt`` through ``torch.hub.load_state_dict_from_url``."""

from __future__ import annotations

from pathlib import Path

import torch

HUBCONF = '''"""A local torch.hub repository."""

dependencies = ["torch"]

import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(width, 5),
        )
        self.example_input_array = torch.randn(2, 3, 16, 16)

    def forward(self, x):
        return self.body(x)


def tinynet(pretrained: bool = False, width: int = 8) -> nn.Module:
    """A tiny convolutional classifier: 3x16x16 images, 5 classes.

    pretrained: load tinynet.pt from torch.hub's checkpoint directory.
    """
    model = TinyNet(width)
    if pretrained:
        url = "https://example.invalid/tinynet.pt"
        model.load_state_dict(torch.hub.load_state_dict_from_url(url, progress=False))
    return model


def _helper():
    """Private: not an entrypoint."""
'''


def make_repo(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hubconf.py").write_text(HUBCONF)
    return folder


def save_pretrained(repo: Path, servegate_home: Path, width: int = 12) -> dict[str, torch.Tensor]:
    """Trained-looking weights where servegate's TORCH_HOME keeps torch.hub checkpoints."""
    model = torch.hub.load(str(repo), "tinynet", source="local", width=width)  # type: ignore[no-untyped-call]
    torch.manual_seed(5)
    state = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    target = servegate_home / ".servegate" / "torch" / "hub" / "checkpoints" / "tinynet.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, target)
    return state
