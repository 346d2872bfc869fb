"""A fast.ai learner served through TorchServe and the gateway answers what ``learn.predict``
answers on the same image bytes, square and not; its archive holds no pickle."""

from __future__ import annotations

import zipfile

import pytest

from export.sources.images import sample_images
from tests.integration.byom.conftest import ByomStore, Served


@pytest.mark.parametrize("image", sorted(sample_images()))
def test_served_labels_match_learn_predict(
    byom_store: ByomStore, byom_served: Served, image: str
) -> None:
    from fastai.learner import load_learner

    learn = load_learner(byom_store.fixtures["fastai"] / "export.pkl", cpu=True)
    raw = sample_images()[image]
    with learn.no_bar(), learn.no_logging():
        label, _, probs = learn.predict(raw)
    vocab = [str(v) for v in learn.dls.vocab]
    with byom_served.gateway.client() as client:
        resp = client.post(
            "/predictions/fastai", content=raw, headers={"Content-Type": "image/png"}
        )
    assert resp.status_code == 200, resp.text
    served = resp.json()
    assert served[0]["label"] == str(label)
    for answer in served:
        assert answer["probability"] == pytest.approx(
            float(probs[vocab.index(answer["label"])]), abs=1e-5
        )


def test_the_archive_holds_no_pickle(byom_store: ByomStore) -> None:
    with zipfile.ZipFile(byom_store.store / f"{byom_store.archive('fastai')}.mar") as mar:
        names = mar.namelist()
    assert not [n for n in names if n.endswith((".pkl", ".pickle"))], names
    assert "model.onnx" in names
