"""Each source's fixture, made in a folder; returns the ``servegate export`` arguments."""

from __future__ import annotations

from pathlib import Path

from tests.support import hf_folders


def hf_embedder(folder: Path) -> list[str]:
    return [f"hf:{hf_folders.sentence_transformer(folder / 'model')}"]


def hf_classifier(folder: Path) -> list[str]:
    return [f"hf:{hf_folders.sequence_classifier(folder / 'model')}"]


def hf_vit(folder: Path) -> list[str]:
    return [f"hf:{hf_folders.image_classifier(folder / 'model')}"]
