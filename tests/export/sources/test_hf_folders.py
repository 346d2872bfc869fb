"""``hf:`` folders that cannot be served as they are are refused before any export, with the
reason; what can be served gets the task its files say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from export.errors import SpecError
from export.registry import resolve
from export.sources.options import SourceOptions
from tests.support import hf_folders


def test_a_hub_id_is_refused_nothing_is_downloaded() -> None:
    with pytest.raises(SpecError, match="Only local folders are exported"):
        resolve("hf:bert-base-uncased/none")


def test_pickled_weights_are_not_loaded(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(SpecError, match=r"found pytorch_model.bin: pickles, not loaded"):
        resolve(f"hf:{tmp_path}")


def test_tasks_come_from_the_folder(tmp_path: Path) -> None:
    classifier = resolve(f"hf:{hf_folders.sequence_classifier(tmp_path / 'cls')}")
    assert classifier.task == "text_classification"
    assert classifier.name == "cls"
    assert classifier.outputs[0].shape == ("batch", 3)
    vit = resolve(f"hf:{hf_folders.image_classifier(tmp_path / 'vit')}")
    assert vit.task == "image_classification"
    assert vit.task_config["resize_mode"] == "squish" and vit.task_config["size"] == [32, 32]
    with pytest.raises(SpecError, match="needs a sentence-transformers folder"):
        resolve(f"hf:{tmp_path / 'cls'}", SourceOptions(task="text_embedding"))


def test_pooling_servegate_cannot_export_is_named(tmp_path: Path) -> None:
    folder = hf_folders.sentence_transformer(tmp_path / "st")
    assert resolve(f"hf:{folder}").task_config["max_length"] == 128
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "lasttoken"}))
    with pytest.raises(SpecError, match=r"pooling \['lasttoken'\] is not supported"):
        resolve(f"hf:{folder}")


# Processors that resize, then centre-crop to another size, bilinearly (so that the crop is what
# is refused): DeiT's resize to 40x40 then crop 32x32, and a non-square crop after a short-side
# resize. Each is refused naming the processor, its settings and what is served.
CROPPING: dict[str, tuple[str, dict[str, Any], str]] = {
    "DeiT: size 40x40, crop 32x32": (
        "DeiTImageProcessor",
        {"size": {"height": 40, "width": 40}, "crop_size": {"height": 32, "width": 32}},
        "the image processor (DeiTImageProcessor) resizes as size={'height': 40, 'width': 40}, "
        "do_center_crop=True, crop_size={'height': 32, 'width': 32}",
    ),
    "CLIP: short side 36, crop 32x24": (
        "CLIPImageProcessor",
        {"size": {"shortest_edge": 36}, "crop_size": {"height": 32, "width": 24}},
        "the image processor (CLIPImageProcessor) resizes as size={'shortest_edge': 36}, "
        "do_center_crop=True, crop_size={'height': 32, 'width': 24}",
    ),
}


@pytest.mark.parametrize("case", list(CROPPING))
def test_processors_that_crop_otherwise_are_refused_with_what_is_served(
    tmp_path: Path, case: str
) -> None:
    import transformers

    processor, settings, said = CROPPING[case]
    made = getattr(transformers, processor)(do_center_crop=True, resample=2, **settings)
    folder = hf_folders.image_classifier(tmp_path / "vit", made)
    with pytest.raises(SpecError) as refused:
        resolve(f"hf:{folder}")
    assert str(refused.value) == (
        f"hf:{folder}: {said}; servegate serves size {{height, width}} without a crop, "
        "or shortest_edge with a square centre crop"
    )
