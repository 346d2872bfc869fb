"""The reload probe runs an artifact in a child first, so a broken one is a reported failure."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from export.errors import FormatFailed
from export.probe import probe

pytestmark = pytest.mark.export  # reloads artifacts in child processes


def test_a_corrupt_artifact_fails_the_reload_stage(tmp_path: Path) -> None:
    artifact = tmp_path / "artifact" / "model.torchscript.pt"
    artifact.parent.mkdir()
    artifact.write_bytes(b"this is not a TorchScript archive")
    with pytest.raises(FormatFailed) as failed:
        probe("torchscript", artifact, "cpu", (torch.zeros(1, 4),))
    assert failed.value.stage == "reload"
    assert "failed in a child (exit 1)" in failed.value.reason


def test_a_good_artifact_passes(tmp_path: Path) -> None:
    artifact = tmp_path / "artifact" / "model.torchscript.pt"
    artifact.parent.mkdir()
    traced = torch.jit.trace(torch.nn.Linear(4, 2).eval(), (torch.zeros(1, 4),))  # type: ignore[no-untyped-call]
    torch.jit.save(traced, str(artifact))
    probe("torchscript", artifact, "cpu", (torch.zeros(3, 4),))
    assert not (tmp_path / "probe_inputs.pt").exists()
