"""fast.ai learners: refused without --trust-pickle; served preprocessing is fast.ai's own
(``Resize(method="crop")`` pixel for pixel); tabular and text learners refused with the
reason."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export.errors import SpecError
from export.registry import resolve
from export.sources.images import sample_images
from export.sources.options import SourceOptions
from handlers.tasks.image_resize import Resizer
from tests.support.fastai_learners import export_learner, export_text_learner

# Trains fast.ai learners (seconds each): out of the fast tier, like exports.
pytestmark = pytest.mark.export


@pytest.fixture(scope="module")
def learner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_learner(tmp_path_factory.mktemp("fastai"))


def test_a_pickle_is_refused_without_trust(learner: Path) -> None:
    with pytest.raises(SpecError, match=r"Pass --trust-pickle \(TRUST_PICKLE=1\)"):
        resolve(f"fastai:{learner}")


def test_settings_come_from_the_learner(learner: Path) -> None:
    spec = resolve(f"fastai:{learner}", SourceOptions(trust_pickle=True))
    assert spec.task == "image_classification"
    assert spec.inputs[0].shape == ("batch", 3, 24, 32)
    config = spec.task_config
    assert (config["resize_mode"], config["size"]) == ("crop", [24, 32])
    assert config["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert config["std"] == pytest.approx([0.229, 0.224, 0.225])


@pytest.mark.parametrize("size", [(24, 32), (32, 32), (40, 24)])
@pytest.mark.parametrize("image", sorted(sample_images()))
def test_crop_mode_is_fastai_resize_pixel_for_pixel(size: tuple[int, int], image: str) -> None:
    from fastai.vision.all import PILImage, Resize

    raw = sample_images()[image]
    theirs = Resize(size, method="crop")(PILImage.create(raw), split_idx=1)
    ours = Resizer({"resize_mode": "crop", "size": list(size)})(
        Image.open(io.BytesIO(raw)).convert("RGB")
    )
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    if image != "square 96x96" or size[0] != size[1]:  # where the two transforms can differ
        side = min(size)
        other = Resizer({"resize_mode": "center_crop", "resize": side, "crop": side})
        shifted = other(Image.open(io.BytesIO(raw)).convert("RGB"))
        assert np.asarray(shifted).shape != np.asarray(theirs).shape or not np.array_equal(
            np.asarray(shifted), np.asarray(theirs)
        )


def test_tabular_learners_are_refused_with_the_reason(tmp_path: Path) -> None:
    import pandas as pd
    from fastai.tabular.all import Categorify, TabularDataLoaders, tabular_learner

    df = pd.DataFrame({"color": ["red", "blue"] * 8, "size": range(16), "y": [0, 1] * 8})
    dls = TabularDataLoaders.from_df(
        df, procs=[Categorify], cat_names=["color"], cont_names=["size"], y_names="y", bs=4
    )
    target = tmp_path / "tabular.pkl"
    tabular_learner(dls, layers=[4]).export(target)
    with pytest.raises(SpecError, match="tabular learners preprocess rows with pandas"):
        resolve(f"fastai:{target}", SourceOptions(trust_pickle=True))


def test_text_learners_are_refused_with_the_reason(tmp_path: Path) -> None:
    from fastai.learner import load_learner
    from fastai.text.all import SpacyTokenizer, TextLearner

    target = export_text_learner(tmp_path)
    learn = load_learner(target, cpu=True)
    assert isinstance(learn, TextLearner)
    # What the refusal names: texts go through spaCy, then fast.ai's Numericalize.
    read_text = learn.dls.tfms[0].fs
    assert [type(t).__name__ for t in read_text] == ["ColReader", "Tokenizer", "Numericalize"]
    assert isinstance(read_text[1].tok, SpacyTokenizer)
    with pytest.raises(SpecError) as refused:
        resolve(f"fastai:{target}", SourceOptions(trust_pickle=True))
    assert str(refused.value) == (
        f"fastai:{target}: text learners tokenise with spaCy and fast.ai's numericalisation, "
        "which servegate's worker does not run"
    )
