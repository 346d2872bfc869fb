"""``fastai:export.pkl``: a fast.ai ``Learner`` saved with ``learn.export()``.

Such a file is a pickle: ``load_learner`` unpickles it with ``weights_only=False``, which runs
code from the file. It is read only with ``--trust-pickle`` (``TRUST_PICKLE=1``), only here at
export time; the archive holds the traced model, labels and settings, never the pickle.

Image classification learners only: the plain model, the labels from the vocab, mean/std from
``Normalize``, the pixel size and resize mode from ``Resize`` (``crop`` is fast.ai's
crop-to-aspect-ratio, ``squish`` a plain resize; ``pad`` is refused). Parity is checked on
image bytes, square and not, against ``learn.predict``. Tabular and text learners are refused:
their preprocessing (pandas procs; spaCy tokenisation and numericalisation) is not something
servegate's worker runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from export.errors import SpecError
from export.library_reference import LibraryCase, LibraryReference
from export.sources.images import sample_images
from export.sources.options import SourceOptions, archive_name
from export.spec import DimRange, ModelSpec, TensorSpec, Tolerance
from export.weights import seeded

REFUSED = {
    "TabularLearner": "tabular learners preprocess rows with pandas (Categorify, FillMissing, "
    "Normalize on DataFrames), which servegate's worker does not run",
    "TextLearner": "text learners tokenise with spaCy and fast.ai's numericalisation, which "
    "servegate's worker does not run",
}
ITEM_TFMS = {"Resize", "ToTensor"}
BATCH_TFMS = {"IntToFloatTensor", "Normalize"}
SOFTMAX_LOSSES = {"CrossEntropyLossFlat", "LabelSmoothingCrossEntropyFlat"}


def spec(target: str, options: SourceOptions) -> ModelSpec:
    path = Path(target)
    if not options.trust_pickle:
        raise SpecError(
            f"fastai:{target}: a fast.ai export is a pickle, and loading it runs code from the "
            "file (load_learner unpickles with weights_only=False). Pass --trust-pickle "
            "(TRUST_PICKLE=1) only for a file you trust; it is unpickled here, at export "
            "time, never in a TorchServe worker"
        )
    if not path.is_file():
        raise SpecError(f"fastai:{target}: no such file")
    learn = _load(path)
    _refuse_unsupported(learn, target)
    config, (height, width) = image_settings(learn, target)
    labels = [str(v) for v in learn.dls.vocab]
    model = learn.model.eval()

    def labels_file(scratch: Path) -> dict[str, Path]:
        import json

        file = scratch / "labels.json"
        file.write_text(json.dumps(labels))
        return {"labels.json": file}

    def example_inputs(sizes: Mapping[str, int]) -> tuple[torch.Tensor, ...]:
        batch = sizes["batch"]
        return (torch.randn(batch, 3, height, width, generator=seeded(batch)),)

    return ModelSpec(
        name=archive_name(options, path.stem),
        task="image_classification",
        build=lambda weights: model,
        example_inputs=example_inputs,
        inputs=(TensorSpec(name="pixels", shape=("batch", 3, height, width)),),
        outputs=(TensorSpec(name="logits", shape=("batch", len(labels))),),
        dims={"batch": DimRange(min=1, max=256, export=2, check=(1, 3, 5))},
        tolerance=Tolerance(atol=1e-4, rtol=1e-4),
        task_config={"labels": "labels.json", "top_k": min(5, len(labels)), **config},
        extra_files=labels_file,
        library_reference=lambda: _predict_reference(learn),
    )


def _load(path: Path) -> Any:
    from fastai.learner import load_learner

    return load_learner(path, cpu=True)


def _refuse_unsupported(learn: Any, target: str) -> None:
    for cls in type(learn).__mro__:
        if cls.__name__ in REFUSED:
            raise SpecError(f"fastai:{target}: {REFUSED[cls.__name__]}")
    loss = type(getattr(learn, "loss_func", None)).__name__
    if loss not in SOFTMAX_LOSSES:
        raise SpecError(
            f"fastai:{target}: servegate answers softmax probabilities over single labels; "
            f"this learner's loss is {loss} (multi-label or regression)"
        )


def image_settings(learn: Any, target: str) -> tuple[dict[str, Any], tuple[int, int]]:
    """The image task's resize and normalisation, from the learner's validation transforms."""
    dl = learn.dls.valid
    resize = None
    for tfm in dl.after_item.fs:
        name = type(tfm).__name__
        if name not in ITEM_TFMS:
            raise SpecError(f"fastai:{target}: item transform {name} is not served")
        if name == "Resize":
            resize = tfm
    if resize is None:
        raise SpecError(f"fastai:{target}: no Resize item transform: the input size is unknown")
    method = str(resize.method)
    if method not in ("crop", "squish"):
        raise SpecError(f"fastai:{target}: Resize(method={method!r}) is not served (crop, squish)")
    width, height = (int(v) for v in resize.size)  # fast.ai stores (width, height)
    config: dict[str, Any] = {"resize_mode": method, "size": [height, width]}
    for tfm in dl.after_batch.fs:
        name = type(tfm).__name__
        if getattr(tfm, "split_idx", None) == 0:
            continue  # training-only augmentation
        if name not in BATCH_TFMS:
            raise SpecError(f"fastai:{target}: batch transform {name} is not served")
        if name == "Normalize":
            config["mean"] = [float(v) for v in tfm.mean.flatten()]
            config["std"] = [float(v) for v in tfm.std.flatten()]
    config.setdefault("mean", [0.0, 0.0, 0.0])
    config.setdefault("std", [1.0, 1.0, 1.0])
    return config, (height, width)


def _predict_reference(learn: Any) -> LibraryReference:
    cases = []
    for label, raw in sample_images().items():
        with learn.no_bar(), learn.no_logging():
            probs = learn.predict(raw)[2]
        cases.append(LibraryCase(label, (raw,), probs.unsqueeze(0).float()))
    return LibraryReference(
        library="fastai learn.predict", cases=tuple(cases), activation="softmax", atol=1e-4
    )
