"""Text generation in the worker: greedy output equals transformers' own ``generate`` token for
token (whole model and Accelerate's CPU + disk placement), streamed pieces add up to the answer,
a client that left stops the generation, and every malformed request is its own 400."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer

from handlers.errors import BadRequest
from handlers.generation.cancel import CancelSignal
from handlers.generation.engine import Generator
from handlers.generation.placement import Placement, load_model
from handlers.generation.request import Limits, Parameters, parse_request
from handlers.generation.service import GenerationService
from tests.support.causal_lm import reference_generate, tiny_llama
from tests.support.fake_context import FakeContext

PROMPTS = ["the weather today is", "a", "Once upon a time, in a land far away, there lived"]
LIMITS = Limits(max_prompt_tokens=32, max_new_tokens=24, max_prompts=4)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("gen") / "llama")


@pytest.fixture(scope="module")
def generator(llama: Path) -> Generator:
    loaded = load_model(llama, "eager", Placement(), torch.device("cpu"))
    tokenizer = AutoTokenizer.from_pretrained(str(llama))
    return Generator(loaded.model, tokenizer, loaded.input_device, LIMITS.max_prompt_tokens)


def _service(generator: Generator, cancel_dir: Path | None = None) -> GenerationService:
    return GenerationService(generator, LIMITS, "llama", "1.0", cancel=CancelSignal(cancel_dir))


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_equals_transformers_generate(
    llama: Path, generator: Generator, prompt: str
) -> None:
    done = generator.generate(prompt, Parameters(max_new_tokens=20))
    assert done.token_ids == reference_generate(llama, prompt, max_new_tokens=20)
    assert done.finish_reason == "length"


def test_accelerate_offloads_to_cpu_and_disk_and_generates_the_same(llama: Path) -> None:
    placement = Placement(max_memory={"cpu": "16MB"})  # the embedding + 2 layers
    loaded = load_model(llama, "accelerate", placement, torch.device("cpu"))
    assert "disk" in loaded.describe() and "cpu" in loaded.describe()
    tokenizer = AutoTokenizer.from_pretrained(str(llama))
    generator = Generator(loaded.model, tokenizer, loaded.input_device, 32)
    done = generator.generate(PROMPTS[0], Parameters(max_new_tokens=12))
    assert done.token_ids == reference_generate(llama, PROMPTS[0], max_new_tokens=12)


def test_accelerate_without_caps_places_everything_on_the_cpu(llama: Path) -> None:
    loaded = load_model(llama, "accelerate", Placement(), torch.device("cpu"))
    assert loaded.input_device == torch.device("cpu")
    tokenizer = AutoTokenizer.from_pretrained(str(llama))
    generator = Generator(loaded.model, tokenizer, loaded.input_device, 32)
    done = generator.generate(PROMPTS[1], Parameters(max_new_tokens=8))
    assert done.token_ids == reference_generate(llama, PROMPTS[1], max_new_tokens=8)


def test_streamed_pieces_add_up_to_the_answer(generator: Generator) -> None:
    pieces: list[str] = []
    done = generator.generate(PROMPTS[2], Parameters(max_new_tokens=16), on_text=pieces.append)
    assert len(pieces) >= 8
    assert "".join(pieces) == done.text


def test_seeded_sampling_repeats_and_seeds_differ(generator: Generator) -> None:
    def sample(seed: int) -> list[int]:
        params = Parameters(max_new_tokens=12, do_sample=True, temperature=1.5, seed=seed)
        return generator.generate(PROMPTS[0], params).token_ids

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_stop_string_ends_the_generation(llama: Path, generator: Generator) -> None:
    full = generator.generate(PROMPTS[0], Parameters(max_new_tokens=20)).text
    stop = full.split()[3]
    done = generator.generate(PROMPTS[0], Parameters(max_new_tokens=20, stop=[stop]))
    assert done.finish_reason == "stop"
    assert done.text.endswith(stop) and len(done.text) < len(full)


def test_a_client_that_left_stops_the_generation(generator: Generator, tmp_path: Path) -> None:
    service = _service(generator, tmp_path)
    request_id = "req-0123456789"
    lines: list[bytes] = []

    def send(idx: int, line: bytes) -> None:
        lines.append(line)
        if len(lines) == 3:  # the gateway saw the client go: it leaves the marker
            (tmp_path / request_id).touch()

    ctx = FakeContext(model_dir="", request_headers={0: {"X-Servegate-Request-Id": request_id}})
    body = {"inputs": PROMPTS[0], "parameters": {"max_new_tokens": 24}, "stream": True}
    answer = json.loads(service.handle([{"body": body}], ctx, send)[0])
    assert answer["details"]["finish_reason"] == "cancelled"
    assert answer["details"]["generated_tokens"] <= 4
    assert not (tmp_path / request_id).exists()


def test_a_batch_answers_each_request_in_its_own_protocol(generator: Generator) -> None:
    service = _service(generator)
    ctx = FakeContext(model_dir="")
    batch: list[dict[str, Any]] = [
        {"body": {"inputs": ["a", "b"], "parameters": {"max_new_tokens": 3}}},
        {"body": {"inputs": "a", "parameters": {"max_new_tokens": 3, "beam": 2}}},
        {"body": {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}},
    ]
    answers = [json.loads(a) for a in service.handle(batch, ctx, lambda i, b: None)]
    assert [ctx.status(i) for i in range(3)] == [200, 400, 200]
    assert [a["details"]["generated_tokens"] for a in answers[0]] == [3, 3]
    assert "beam" in answers[1]["message"] and answers[1]["code"] == 400
    assert answers[2]["outputs"][0]["name"] == "text_output"
    default = Parameters(max_new_tokens=LIMITS.max_new_tokens)  # the default, capped
    assert answers[2]["outputs"][0]["data"] == [generator.generate("a", default).text]


def test_stream_sends_every_piece_before_the_answer(generator: Generator) -> None:
    sent: list[tuple[int, dict[str, str]]] = []
    ctx = FakeContext(model_dir="")
    body = {"inputs": "a", "parameters": {"max_new_tokens": 10}, "stream": True}
    service = _service(generator)
    answers = service.handle([{"body": body}], ctx, lambda i, b: sent.append((i, json.loads(b))))
    last = json.loads(answers[0])
    assert ctx.content_types[0] == "application/jsonlines"
    assert {i for i, _ in sent} == {0}
    assert "".join(piece["token"] for _, piece in sent) == last["generated_text"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"inputs": "a", "parameters": {"max_new_tokens": 25}}, "limit of 24"),
        ({"inputs": "a", "parameters": {"max_new_tokens": 0}}, "max_new_tokens"),
        ({"inputs": "a", "parameters": {"temperature": 0}}, "temperature"),
        ({"inputs": "a", "parameters": {"top_p": 1.5}}, "top_p"),
        ({"inputs": "a", "parameters": {"do_sample": "yes"}}, "do_sample"),
        ({"inputs": "a", "parameters": {"stop": ["x"] * 5}}, "stop"),
        ({"inputs": "a", "extra": 1}, "extra"),
        ({"inputs": ["a", "b"], "stream": True}, "one prompt"),
        ({"inputs": ["a"] * 5}, "at most 4"),
        ({"inputs": []}, "empty"),
        ({"inputs": "  "}, "empty"),
        ({"inputs": 3}, "inputs"),
        ({"inputs": "a", "parameters": {"stream": True}}, "beside"),
        ("plain text", "JSON object"),
    ],
)
def test_malformed_requests_are_refused(body: object, says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        parse_request(body, LIMITS)


def test_a_prompt_over_the_limit_is_refused(generator: Generator) -> None:
    with pytest.raises(BadRequest, match="at most 32"):
        generator.generate("word " * 40, Parameters())


def test_request_ids_that_could_name_another_file_are_ignored(tmp_path: Path) -> None:
    signal = CancelSignal(tmp_path)
    assert signal.request_id({"X-Servegate-Request-Id": "../../etc/passwd"}) is None
    assert signal.request_id({"x-servegate-request-id": b"abcdef0123"}) == "abcdef0123"
    assert not signal.is_set(None)
