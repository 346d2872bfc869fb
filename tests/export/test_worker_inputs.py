"""The worker's own decoding is checked against the declared inputs before any export.

The Lightning refusals, through ``servegate export``: tests/export/sources/test_lightning_tasks.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from export.errors import SpecMismatch
from export.models import resnet18
from export.registry import resolve
from export.worker_inputs import check_worker_inputs


@pytest.mark.parametrize("model", ["mlp", "minilm", "resnet18", "examples/house_prices.py"])
def test_the_built_in_and_example_specs_pass(model: str, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    spec = resolve(str(root / model) if model.endswith(".py") else model)
    check_worker_inputs(spec, tmp_path / "worker")
    assert not (tmp_path / "worker").exists()  # the staged task files are removed


def test_settings_the_worker_rejects_are_named(tmp_path: Path) -> None:
    config = {**resnet18.SPEC.task_config, "resize_mode": "letterbox"}
    spec = resnet18.SPEC.model_copy(update={"task_config": config})
    with pytest.raises(SpecMismatch) as refused:
        check_worker_inputs(spec, tmp_path / "worker")
    assert str(refused.value) == (
        "the image_classification worker cannot start with this spec's task_config and files: "
        "ValueError: unknown resize_mode 'letterbox'; known: center_crop, crop, squish"
    )


def test_a_dynamic_image_size_accepts_the_workers_pixels_a_dtype_does_not(
    tmp_path: Path,
) -> None:
    """Named axes take any size the worker decodes; the worker's float32 pixels do not feed
    a model declared float16."""
    inputs = (resnet18.SPEC.inputs[0].model_copy(update={"shape": ("batch", 3, "h", "w")}),)
    dims = {
        **resnet18.SPEC.dims,
        "h": resnet18.SPEC.dims["batch"],
        "w": resnet18.SPEC.dims["batch"],
    }
    spec = resnet18.SPEC.model_copy(update={"inputs": inputs, "dims": dims})
    check_worker_inputs(spec, tmp_path / "worker")
    wrong = spec.model_copy(update={"inputs": (inputs[0].model_copy(update={"dtype": "float16"}),)})
    with pytest.raises(SpecMismatch, match=r"into float32 \[2, 3, 224, 224\]; the spec declares "):
        check_worker_inputs(wrong, tmp_path / "worker")
