"""Lightning modules trained for one epoch in the test, with non-default hyperparameters.

The module source is written to a file of its own (as a user's would be) and imported under
its own name, so the checkpoint pickles its dataclass hyperparameter as ``<name>.Config``:
exactly what ``--allow-global <name>.Config`` must then name.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

SOURCE = '''
from dataclasses import dataclass

import torch
from torch import nn
import {package} as L


@dataclass
class Config:
    hidden: int = 16


class Regressor(L.LightningModule):
    def __init__(self, config: Config, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        hidden = config.hidden
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.Tanh(), nn.Linear(hidden, 3))
        self.example_input_array = torch.randn(4, 8)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Unsaved(Regressor):
    """Forgets save_hyperparameters(): the checkpoint cannot rebuild it alone."""

    def __init__(self, hidden: int) -> None:
        L.LightningModule.__init__(self)
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.Tanh(), nn.Linear(hidden, 3))
        self.example_input_array = torch.randn(4, 8)
        self.lr = 0.05

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)
'''


@dataclass(frozen=True)
class Trained:
    module_file: Path
    ckpt: Path
    module: Any  # the trained LightningModule


def train(
    folder: Path, name: str, cls: str = "Regressor", package: str = "lightning.pytorch"
) -> Trained:
    """Write module ``name``, train ``cls`` for one epoch (hidden=24, lr=0.05), save its ckpt."""
    source = write_module(folder, name, SOURCE.format(package=package))
    torch.manual_seed(0)
    model = (
        source.Regressor(source.Config(hidden=24), lr=0.05)
        if cls == "Regressor"
        else source.Unsaved(hidden=24)
    )
    data = torch.utils.data.TensorDataset(torch.randn(64, 8), torch.randn(64, 3))
    ckpt = folder / f"{name}.ckpt"
    fit_and_save(model, data, ckpt, package)
    return Trained(folder / f"{name}.py", ckpt, model.eval())


def write_module(folder: Path, name: str, source: str) -> Any:
    """``folder/name.py`` holding ``source``, imported under ``name`` (as its checkpoint will
    name its classes)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(source)
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def fit_and_save(
    model: Any, data: Any, ckpt: Path, package: str = "lightning.pytorch", batch_size: int = 16
) -> None:
    """One epoch of ``model`` on ``data`` (a Dataset) on the CPU, then its checkpoint."""
    lightning = importlib.import_module(package)
    trainer = lightning.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=batch_size))
    trainer.save_checkpoint(str(ckpt))
