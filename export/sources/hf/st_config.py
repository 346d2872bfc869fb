"""A sentence-transformers folder's pipeline (``modules.json``): Transformer, Pooling and an
optional Normalize are what servegate exports; anything else is refused by name.

Pooling configs come in two shapes: sentence-transformers < 6 writes one boolean per mode
(``pooling_mode_mean_tokens``), 6.x writes ``"pooling_mode": "mean"``.
"""

from __future__ import annotations

from typing import cast

from export.errors import SpecError
from export.sources.hf.folder import SENTENCE_TRANSFORMERS, HFFolder
from export.sources.hf.modules import Pooling

SUPPORTED: dict[str, Pooling] = {
    "cls": "cls",
    "cls_token": "cls",
    "mean": "mean",
    "mean_tokens": "mean",
    "max": "max",
    "max_tokens": "max",
}


def sentence_pipeline(folder: HFFolder) -> tuple[Pooling, bool]:
    """The pooling mode and whether the embedding is L2-normalised."""
    modules = cast(list[dict[str, str]], _load_list(folder))
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
        raise SpecError(
            f"hf:{folder.path}: servegate exports Transformer -> Pooling [-> Normalize]; "
            f"modules.json lists {' -> '.join(kinds)}"
        )
    if modules[0].get("path", ""):
        raise SpecError(f"hf:{folder.path}: the Transformer module must be the folder itself")
    prompt = folder.json("config_sentence_transformers.json").get("default_prompt_name")
    if prompt:
        raise SpecError(
            f"hf:{folder.path}: sentence-transformers prepends the default prompt {prompt!r} "
            "to every text; servegate sends texts as they come"
        )
    return _pooling(folder, modules[1]["path"]), len(kinds) == 3


def _load_list(folder: HFFolder) -> list[object]:
    import json

    if not (folder.path / SENTENCE_TRANSFORMERS).is_file():
        raise SpecError(
            f"hf:{folder.path}: text_embedding needs a sentence-transformers folder "
            "(its modules.json says how token vectors are pooled)"
        )
    value = json.loads((folder.path / SENTENCE_TRANSFORMERS).read_text())
    if not isinstance(value, list) or not value:
        raise SpecError(f"hf:{folder.path}: modules.json is not a list of modules")
    return value


def _pooling(folder: HFFolder, path: str) -> Pooling:
    config = folder.json(f"{path}/config.json")
    mode = config.get("pooling_mode")
    if mode is None:
        modes = [k.removeprefix("pooling_mode_") for k, v in config.items() if v is True]
        modes = [m for m in modes if m.startswith(("cls", "mean", "max", "weighted", "last"))]
    else:
        modes = [mode] if isinstance(mode, str) else list(mode)
    if len(modes) != 1 or modes[0] not in SUPPORTED:
        raise SpecError(
            f"hf:{folder.path}: pooling {modes} is not supported; servegate exports one of "
            "cls, mean or max"
        )
    return SUPPORTED[modes[0]]
