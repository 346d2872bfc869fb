"""``hf:`` folders that cannot be served as they are are refused before any export, with the
reason; what can be served gets the task its files say."""

from __future__ import annotations

import json
from pathlib import Path

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
