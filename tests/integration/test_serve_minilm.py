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
    assert resp.json()["truncated"] == [SENTENCES.index(LONG)]  # the answer says it was cut


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_plain_text_bodies_match_one_by_one(
    torchserve: TorchServeClient, reference: torch.Tensor, fmt: str
) -> None:
    for i, text in enumerate(SENTENCES):
        if not text:
            continue  # an empty body is refused: test_empty_body_is_refused
        resp = torchserve.predict(
            f"minilm_{fmt}",
            content=text.encode(),
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
        assert resp.status_code == 200, resp.text
        (embedding,) = resp.json()["embeddings"]
        assert cosines([embedding], reference[i : i + 1])[0] >= 0.9999
        assert ("truncated" in resp.json()) == (text is LONG)


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None])
def test_empty_body_is_refused(torchserve: TorchServeClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    resp = torchserve.predict("minilm_onnx", content=b"", headers=headers)
    assert resp.status_code == 400
    body = resp.json()
    assert body["type"] == "BadRequest"
    assert body["message"].startswith("the request body is empty")
    assert "text/plain (one text), application/json" in body["message"]


def test_form_encoded_body_names_the_content_type_received_and_accepted(
    torchserve: TorchServeClient,
) -> None:
    # What `curl -d 'hello world'` sends.
    resp = torchserve.predict(
        "minilm_torchscript",
        content=b"hello world",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 400
    message = resp.json()["message"]
    assert "sent as Content-Type application/x-www-form-urlencoded" in message
    assert "this model accepts text/plain (one text), application/json" in message


def test_oip_answer_names_truncated_inputs(torchserve: TorchServeClient) -> None:
    texts = ["short", LONG]
    body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]}
    resp = torchserve.predict("minilm_onnx", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["parameters"] == {"truncated_inputs": [1]}


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
