"""torch.hub sources: local repositories only, entrypoints listed with their docstrings, and a
pretrained file read from servegate's TORCH_HOME (or a clear "put it here")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from export.errors import SpecError
from export.registry import resolve
from export.sources.options import SourceOptions
from tests.support.hub_repo import make_repo, save_pretrained

SERVEGATE = str(Path(sys.executable).with_name("servegate"))


def test_hub_list_prints_entrypoints_and_docstrings(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    result = subprocess.run(
        [SERVEGATE, "hub", "list", str(repo)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "tinynet  A tiny convolutional classifier: 3x16x16 images, 5 classes." in lines
    assert "TinyNet  (no docstring)" in lines  # torch.hub's rule: every public callable
    assert not any("_helper" in line for line in lines)


def test_github_repositories_are_refused() -> None:
    with pytest.raises(SpecError, match="GitHub repositories are not fetched"):
        resolve("hub:pytorch/vision:resnet18")


def test_a_missing_pretrained_file_names_where_it_belongs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVEGATE_HOME", str(tmp_path))
    repo = make_repo(tmp_path / "repo")
    expected = tmp_path / ".servegate" / "torch" / "hub" / "checkpoints" / "tinynet.pt"
    with pytest.raises(SpecError, match=f"nothing is downloaded: put it at {expected}"):
        resolve(f"hub:{repo}:tinynet", SourceOptions(hub_kwargs={"pretrained": True}))


def test_pretrained_weights_and_kwargs_reach_the_entrypoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVEGATE_HOME", str(tmp_path))
    repo = make_repo(tmp_path / "repo")
    state = save_pretrained(repo, tmp_path, width=12)
    options = SourceOptions(hub_kwargs={"pretrained": True, "width": 12})
    spec = resolve(f"hub:{repo}:tinynet", options)
    assert (spec.name, spec.task) == ("tinynet", "tensor")
    assert spec.inputs[0].shape == ("batch", 3, 16, 16) and spec.outputs[0].shape == ("batch", 5)
    module = spec.build(None)
    for name, value in module.state_dict().items():
        torch.testing.assert_close(value, state[name])
