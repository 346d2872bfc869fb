"""minilm through a real TorchServe matches sentence-transformers' own encode()."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers import SentenceTransformer

from export.models.minilm import model_dir
from tests.support.tsclient import TorchServeClient

LONG = " ".join(["The quick brown fox jumps over the lazy dog near the riverbank."] * 40)
SENTENCES = [
    "Hello world",
    LONG,  # far past the 256-token limit: truncated exactly as sentence-transformers does
    "",
    "Ünïcödé naïve café — 日本語のテキスト, Ελληνικά, emoji 🚀",
    "A served embedding must match the reference one.",
]


@pytest.fixture(scope="module")
def reference() -> torch.Tensor:
    model = SentenceTransformer(str(model_dir()), device="cpu")
    encoded = model.encode(SENTENCES, normalize_embeddings=True, convert_to_tensor=True)
    assert isinstance(encoded, torch.Tensor)
    return encoded


def cosines(served: list[list[float]], expected: torch.Tensor) -> list[float]:
    got = torch.tensor(served)
    return torch.nn.functional.cosine_similarity(got, expected, dim=1).tolist()


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_batch_request_matches_sentence_transformers(
    torchserve: TorchServeClient, reference: torch.Tensor, fmt: str
) -> None:
    resp = torchserve.predict(f"minilm_{fmt}", json={"inputs": SENTENCES})
    assert resp.status_code == 200, resp.text
    embeddings = resp.json()["embeddings"]
    assert len(embeddings) == len(SENTENCES)
    assert all(c >= 0.9999 for c in cosines(embeddings, reference)), cosines(embeddings, reference)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_plain_text_bodies_match_one_by_one(
    torchserve: TorchServeClient, reference: torch.Tensor, fmt: str
) -> None:
    for i, text in enumerate(SENTENCES):
        resp = torchserve.predict(
            f"minilm_{fmt}",
            content=text.encode(),
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
        assert resp.status_code == 200, resp.text
        (embedding,) = resp.json()["embeddings"]
        assert cosines([embedding], reference[i : i + 1])[0] >= 0.9999


def test_oip_bytes_input(torchserve: TorchServeClient, reference: torch.Tensor) -> None:
    body = {
        "inputs": [
            {"name": "text", "shape": [len(SENTENCES)], "datatype": "BYTES", "data": SENTENCES}
        ]
    }
    resp = torchserve.predict("minilm_onnx", json=body)
    assert resp.status_code == 200, resp.text
    (out,) = resp.json()["outputs"]
    assert out["datatype"] == "FP32"
    assert out["shape"] == [len(SENTENCES), 384]
    served = torch.tensor(out["data"]).reshape(len(SENTENCES), 384).tolist()
    assert all(c >= 0.9999 for c in cosines(served, reference))


def test_non_string_inputs_are_a_400(torchserve: TorchServeClient) -> None:
    resp = torchserve.predict("minilm_torchscript", json={"inputs": ["ok", 42]})
    assert resp.status_code == 400
    assert resp.json()["message"] == '"inputs" must be a list of strings'
