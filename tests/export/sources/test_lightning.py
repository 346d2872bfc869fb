"""Lightning checkpoints: each known trap is a clear message saying what to pass, and what is
read from the checkpoint is the trained model (non-default hyperparameters, trained weights)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from export.errors import SpecError
from export.registry import resolve
from export.sources.lightning import spec_from_module
from export.sources.lightning_load import allowed_globals
from export.sources.lightning_spec import lightning_spec
from export.sources.options import SourceOptions
from export.weights import load_state_dict
from tests.support.lightning_models import Trained, train

# Trains Lightning modules (seconds each): out of the fast tier, like exports.
pytestmark = pytest.mark.export


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train(tmp_path_factory.mktemp("lit"), "byom_lit_fast")


def test_a_class_without_its_checkpoint_says_to_pass_it(trained: Trained) -> None:
    with pytest.raises(SpecError, match=r"lightning.pytorch.LightningModule; pass its checkpoint"):
        resolve(f"{trained.module_file}:Regressor")


def test_hyperparameter_classes_are_named_never_unpickled(trained: Trained) -> None:
    with pytest.raises(SpecError) as refused:
        resolve(f"{trained.module_file}:Regressor", SourceOptions(ckpt=trained.ckpt))
    message = str(refused.value)
    assert "weights-only loading does not build: byom_lit_fast.Config" in message
    assert "--allow-global byom_lit_fast.Config" in message


def test_the_checkpoint_gives_the_trained_module(trained: Trained) -> None:
    options = SourceOptions(ckpt=trained.ckpt, allow_globals=("byom_lit_fast.Config",))
    spec = resolve(f"{trained.module_file}:Regressor", options)
    assert (spec.name, spec.task) == ("regressor", "tensor")
    assert spec.inputs[0].shape == ("batch", 8) and spec.outputs[0].shape == ("batch", 3)
    x = torch.randn(5, 8)
    with torch.no_grad():
        torch.testing.assert_close(spec.build(None)(x), trained.module(x))


def test_a_module_that_never_saved_its_hyperparameters_takes_init_kwargs(
    tmp_path: Path,
) -> None:
    unsaved = train(tmp_path, "byom_lit_unsaved", cls="Unsaved")
    with pytest.raises(SpecError, match=r"save_hyperparameters\(\) was never called"):
        resolve(f"{unsaved.module_file}:Unsaved", SourceOptions(ckpt=unsaved.ckpt))
    options = SourceOptions(ckpt=unsaved.ckpt, init_kwargs={"hidden": 24})
    spec = resolve(f"{unsaved.module_file}:Unsaved", options)
    x = torch.randn(3, 8)
    with torch.no_grad():
        torch.testing.assert_close(spec.build(None)(x), unsaved.module(x))


def test_the_standalone_pytorch_lightning_hierarchy_is_read_too(tmp_path: Path) -> None:
    trained = train(tmp_path, "byom_lit_pl", package="pytorch_lightning")
    options = SourceOptions(ckpt=trained.ckpt, allow_globals=("byom_lit_pl.Config",))
    spec = resolve(f"{trained.module_file}:Regressor", options)
    x = torch.randn(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(spec.build(None)(x), trained.module(x))


def test_weights_from_a_checkpoint_fit_an_ordinary_model(trained: Trained) -> None:
    plain = nn.Sequential(nn.Linear(8, 24), nn.Tanh(), nn.Linear(24, 3))
    with allowed_globals(SourceOptions(allow_globals=("byom_lit_fast.Config",)), None):
        load_state_dict(plain, trained.ckpt)  # "net." stripped
    x = torch.randn(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), trained.module(x))


def test_a_lightning_spec_names_what_the_class_cannot(trained: Trained) -> None:
    source = sys.modules["byom_lit_fast"]
    served = lightning_spec(
        source.Regressor, name="prices", input_names=("features",), output_name="price"
    )
    options = SourceOptions(ckpt=trained.ckpt, allow_globals=("byom_lit_fast.Config",))
    spec = spec_from_module(served, options, "module.py:SERVE")
    assert (spec.name, spec.inputs[0].name, spec.outputs[0].name) == ("prices", "features", "price")
