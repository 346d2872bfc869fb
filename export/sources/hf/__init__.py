"""``hf:path/to/dir``: a local Hugging Face folder (``save_pretrained``), exported for the task
it serves: a sentence-transformers embedder (``text_embedding``), ``*ForSequenceClassification``
(``text_classification``) or ``*ForImageClassification`` (``image_classification``).
``--task`` overrides the detected task."""

from __future__ import annotations

from export.sources.hf.folder import HFFolder
from export.sources.options import SourceOptions
from export.spec import ModelSpec


def spec(target: str, options: SourceOptions) -> ModelSpec:
    folder = HFFolder.open(target)
    task = options.task or folder.task()
    if task == "text_embedding":
        from export.sources.hf.text import embedding_spec

        return embedding_spec(folder, options)
    if task == "text_classification":
        from export.sources.hf.text import classification_spec

        return classification_spec(folder, options)
    if task == "image_classification":
        from export.sources.hf.image import image_spec

        return image_spec(folder, options)
    from export.errors import SpecError

    raise SpecError(f"hf:{target}: task {task!r} is not served from a Hugging Face folder")
