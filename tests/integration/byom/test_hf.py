"""Hugging Face folders served through TorchServe and the gateway answer what the libraries
answer: sentence-transformers' ``encode`` and transformers' pipelines."""

from __future__ import annotations

import io
import json

import pytest
import torch
from PIL import Image

from export.sources.images import sample_images
from tests.integration.byom.conftest import ByomStore, Served

TEXTS = [
    "Hello world",
    "The recipe calls for two cups of flour, one egg and a pinch of salt.",
    " ".join(["A very long review that goes on and on."] * 30),  # past the 128-token window
    "Ünïcödé naïve café — 日本語のテキスト",
]


def test_embeddings_match_sentence_transformers(byom_store: ByomStore, byom_served: Served) -> None:
    from sentence_transformers import SentenceTransformer

    folder = byom_store.fixtures["hf_embedder"] / "model"
    expected = SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_tensor=True)
    direct = byom_served.torchserve.predict(
        byom_store.archive("hf_embedder"), json={"inputs": TEXTS}
    )
    with byom_served.gateway.client() as client:
        routed = client.post("/predictions/hf_embedder", json={"inputs": TEXTS})
    for resp in (direct, routed):
        assert resp.status_code == 200, resp.text
        got = torch.tensor(resp.json()["embeddings"])
        torch.testing.assert_close(got, expected.cpu(), atol=1e-5, rtol=1e-4)
        assert resp.json()["truncated"] == [2]


def test_oip_embeddings_match_sentence_transformers(
    byom_store: ByomStore, byom_served: Served
) -> None:
    from sentence_transformers import SentenceTransformer

    folder = byom_store.fixtures["hf_embedder"] / "model"
    expected = SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_tensor=True)
    tensor = {"name": "text", "shape": [len(TEXTS)], "datatype": "BYTES", "data": TEXTS}
    with byom_served.gateway.client() as client:
        meta = client.get("/v2/models/hf_embedder")
        oip = client.post("/v2/models/hf_embedder/infer", json={"id": "e1", "inputs": [tensor]})
    assert meta.status_code == 200, meta.text
    assert meta.json()["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta.json()["outputs"] == [
        {"name": "sentence_embedding", "datatype": "FP32", "shape": [-1, 32]}
    ]
    assert oip.status_code == 200, oip.text
    body = oip.json()
    assert (body["model_name"], body["id"]) == ("hf_embedder", "e1")
    (out,) = body["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("sentence_embedding", "FP32", [4, 32])
    got = torch.tensor(out["data"]).reshape(out["shape"])
    torch.testing.assert_close(got, expected.cpu(), atol=1e-5, rtol=1e-4)
    assert body["parameters"] == {"truncated_inputs": [2]}


def test_classifier_matches_the_text_classification_pipeline(
    byom_store: ByomStore, byom_served: Served
) -> None:
    from transformers import pipeline

    folder = byom_store.fixtures["hf_classifier"] / "model"
    classify = pipeline("text-classification", model=str(folder), device="cpu")
    expected = classify(TEXTS, top_k=None, truncation=True, max_length=256)
    with byom_served.gateway.client() as client:
        native = client.post("/predictions/hf_classifier", json={"inputs": TEXTS})
        oip = client.post(
            "/v2/models/hf_classifier/infer",
            json={"inputs": [{"name": "text", "shape": [4], "datatype": "BYTES", "data": TEXTS}]},
        )
    assert native.status_code == 200, native.text
    for served, library in zip(native.json(), expected, strict=True):
        assert [s["label"] for s in served] == [a["label"] for a in library]
        assert [s["probability"] for s in served] == pytest.approx(
            [a["score"] for a in library], abs=1e-5
        )
    assert oip.status_code == 200, oip.text
    outputs = {o["name"]: o for o in oip.json()["outputs"]}
    assert outputs["label"]["shape"] == [4, 3]
    assert outputs["label"]["data"][:3] == [a["label"] for a in expected[0]]


@pytest.mark.parametrize("image", sorted(sample_images()))
def test_vit_matches_the_image_classification_pipeline(
    byom_store: ByomStore, byom_served: Served, image: str
) -> None:
    from transformers import pipeline

    raw = sample_images()[image]
    folder = byom_store.fixtures["hf_vit"] / "model"
    classify = pipeline("image-classification", model=str(folder), device="cpu")
    expected = classify(Image.open(io.BytesIO(raw)), top_k=None)
    with byom_served.gateway.client() as client:
        resp = client.post(
            "/predictions/hf_vit", content=raw, headers={"Content-Type": "image/png"}
        )
    assert resp.status_code == 200, resp.text
    served = resp.json()
    assert [s["label"] for s in served] == [a["label"] for a in expected]
    assert [s["probability"] for s in served] == pytest.approx(
        [a["score"] for a in expected], abs=1e-4
    )


def test_archives_hold_no_pickle_and_name_the_library_checked(byom_store: ByomStore) -> None:
    report = json.loads((byom_store.store / "hf_classifier" / "export_report.json").read_text())
    assert report["library"] == "transformers text-classification pipeline"
    assert report["formats"]["torchscript"]["library_max_abs_err"] < 1e-4
