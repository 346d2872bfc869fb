"""A causal LM exported and served by a real TorchServe in each generation format: greedy
answers equal transformers' ``model.generate`` on the same weights, token for token, whole and
streamed; the stream arrives piece by piece; a request over the limits is a 400; a client
that left (the gateway's marker) stops the generation."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from export.formats import Format
from export.generation.options import GenerationOptions
from export.pipeline import ExportRequest, run_export
from export.sources.options import SourceOptions
from handlers.generation.cancel import CANCEL_DIR_ENV
from tests.conftest import serving
from tests.support.causal_lm import reference_generate, tiny_llama
from tests.support.tsclient import TorchServeClient

pytestmark = [pytest.mark.export, pytest.mark.torchserve]

FORMATS: tuple[Format, ...] = ("eager", "accelerate", "deepspeed_tp")
PROMPT = "The quick brown fox jumps over the lazy dog."
OPTIONS = GenerationOptions(
    max_prompt_tokens=64, max_new_tokens=96, max_memory={"cpu": "16MB"}, tp_size=2
)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("llm") / "tiny_llama")


@pytest.fixture(scope="module")
def served(
    llama: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TorchServeClient, Path]]:
    store = tmp_path_factory.mktemp("llm_store")
    report = run_export(
        ExportRequest(
            model=f"hf:{llama}",
            out=store,
            formats=FORMATS,
            generation=OPTIONS,
            source=SourceOptions(name="llama"),
        )
    )
    assert not report.failed, report.failed
    cancel_dir = tmp_path_factory.mktemp("cancel")
    saved = os.environ.get(CANCEL_DIR_ENV)
    os.environ[CANCEL_DIR_ENV] = str(cancel_dir)  # TorchServe's workers inherit it
    try:
        with serving(store, tmp_path_factory.mktemp("ts")) as client:
            yield client, cancel_dir
    finally:
        if saved is None:
            os.environ.pop(CANCEL_DIR_ENV, None)
        else:
            os.environ[CANCEL_DIR_ENV] = saved


def _expected(llama: Path, tokens: int) -> str:
    from transformers import AutoTokenizer

    ids = reference_generate(llama, PROMPT, max_new_tokens=tokens)
    return str(AutoTokenizer.from_pretrained(str(llama)).decode(ids, skip_special_tokens=True))


@pytest.mark.parametrize("fmt", FORMATS)
def test_greedy_answer_equals_transformers(
    served: tuple[TorchServeClient, Path], llama: Path, fmt: str
) -> None:
    client, _ = served
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 20}}
    answer = client.predict(f"llama_{fmt}", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["generated_text"] == _expected(llama, 20)
    assert answer.json()["details"]["generated_tokens"] == 20


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_arrives_piece_by_piece(
    served: tuple[TorchServeClient, Path], llama: Path, fmt: str
) -> None:
    client, _ = served
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 24}, "stream": True}
    lines: list[dict[str, object]] = []
    url = f"{client.inference_url}/predictions/llama_{fmt}"
    with httpx.stream("POST", url, json=body, headers=client.auth, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.strip():
                lines.append(json.loads(line))
    *pieces, last = lines
    assert len(pieces) >= 10
    assert "".join(str(p["token"]) for p in pieces) == last["generated_text"]
    assert last["generated_text"] == _expected(llama, 24)


def test_over_the_limit_is_a_400(served: tuple[TorchServeClient, Path]) -> None:
    client, _ = served
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 97}}
    answer = client.predict("llama_accelerate", json=body)
    assert answer.status_code == 400
    assert "limit of 96" in answer.json()["message"]


@pytest.mark.parametrize("fmt", ["eager", "deepspeed_tp"])
def test_a_client_gone_stops_the_generation(
    served: tuple[TorchServeClient, Path], fmt: str
) -> None:
    client, cancel_dir = served
    request_id = f"cancel-{fmt.replace('_', '-')}-{time.monotonic_ns()}"
    headers = {**client.auth, "X-Servegate-Request-Id": request_id}
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 96}, "stream": True}
    lines = []
    url = f"{client.inference_url}/predictions/llama_{fmt}"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
        for line in response.iter_lines():
            if line.strip():
                lines.append(json.loads(line))
                if len(lines) == 3:
                    (cancel_dir / request_id).touch()
    assert lines[-1]["details"]["finish_reason"] == "cancelled"
    assert lines[-1]["details"]["generated_tokens"] < 96
    assert not (cancel_dir / request_id).exists()
