"""Text generation streamed THROUGH the gateway from a real TorchServe: a random-weight Llama
exported as ``accelerate`` (stable) and ``deepspeed_tp`` tp=2 (canary, a shadow compared by
tokens); greedy Server-Sent Events and gRPC stream messages equal transformers'
``model.generate`` token for token; a client that leaves stops the worker (the gateway's
marker in the shared cancel directory, taken by the worker); a failing variant answers an
error at once, never a hang."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from export.generation.options import GenerationOptions
from export.pipeline import ExportRequest, run_export
from export.sources.options import SourceOptions
from servegate.torchserve.process import TorchServe
from servegate.torchserve.settings import Ports, TorchServeSettings
from tests.gateway.grpc.support import channel, predictions, torchserve_stub, variant_of
from tests.gateway.support import RunningGateway, run_gateway, ts_backend, wait_for, write_config
from tests.support.causal_lm import reference_generate, tiny_llama
from tests.support.tsclient import TorchServeClient

pytestmark = [pytest.mark.export, pytest.mark.torchserve]

PROMPT = "The quick brown fox jumps over the lazy dog."
OPTIONS = GenerationOptions(
    max_prompt_tokens=64, max_new_tokens=96, max_memory={"cpu": "16MB"}, tp_size=2
)


@dataclass
class Stack:
    gw: RunningGateway
    ts: TorchServeClient
    cancel_dir: Path
    llama: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    llama = tiny_llama(tmp_path_factory.mktemp("llm") / "tiny_llama")
    store = tmp_path_factory.mktemp("llm_store")
    report = run_export(
        ExportRequest(
            model=f"hf:{llama}",
            out=store,
            formats=("accelerate", "deepspeed_tp"),
            generation=OPTIONS,
            source=SourceOptions(name="llama"),
        )
    )
    assert not report.failed, report.failed
    cancel_dir = tmp_path_factory.mktemp("cancel")
    work = tmp_path_factory.mktemp("ts")
    # One directory for both, as `servegate serve --cancel-dir` and the gateway's cancel_dir.
    settings = TorchServeSettings(
        store=store, workdir=work, ports=Ports.ephemeral(), cancel_dir=cancel_dir
    )
    server = TorchServe(settings)
    server.start()
    try:
        server.wait_ready()
        ts = TorchServeClient(settings, server.keys())
        route = {
            "variants": [
                _variant("stable", "llama_accelerate", 100),
                _variant("canary", "llama_deepspeed_tp", 0),
                _variant("missing", "llama_not_served", 0),
            ],
            "pin_header": "X-Servegate-Variant",
            "timeout_s": 60,
            "shadow": {"variant": "canary", "percent": 100, "compare": "tokens"},
        }
        backends = {"ts": ts_backend(ts)}
        config = write_config(work / "gateway.yaml", backends, {"llama": route})
        with run_gateway(config, cancel_dir=cancel_dir) as gw:
            yield Stack(gw, ts, cancel_dir, llama)
    finally:
        server.stop()


def _variant(name: str, model: str, weight: int) -> dict[str, Any]:
    return {"name": name, "backend": "ts", "model": model, "version": "1.0", "weight": weight}


def _expected(llama: Path, tokens: int) -> str:
    from transformers import AutoTokenizer

    ids = reference_generate(llama, PROMPT, max_new_tokens=tokens)
    return str(AutoTokenizer.from_pretrained(str(llama)).decode(ids, skip_special_tokens=True))


def _sse(url: str, body: dict[str, Any], headers: dict[str, str]) -> list[tuple[str, Any]]:
    out, name = [], "message"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=120) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                out.append((name, json.loads(line[len("data: ") :])))
                name = "message"
    return out


@pytest.mark.parametrize("pin", ["stable", "canary"])
def test_streamed_events_equal_transformers(stack: Stack, pin: str) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 24}, "stream": True}
    headers = {"X-Servegate-Variant": pin}
    *tokens, (name, last) = _sse(f"{stack.gw.url}/predictions/llama", body, headers)
    assert name == "message" and len(tokens) >= 10
    assert all(n == "message" for n, _ in tokens)
    text = "".join(t["token"] for _, t in tokens)
    assert text == last["generated_text"] == _expected(stack.llama, 24)
    assert last["details"]["generated_tokens"] == 24
    labels = {"route": "llama", "variant": pin, "protocol": "rest"}
    assert stack.gw.metric("servegate_stream_first_token_seconds_count", **labels) >= 1
    assert stack.gw.metric("servegate_stream_tokens_total", **labels) >= 24


def test_grpc_stream_equals_transformers(stack: Stack) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 20}, "stream": True}
    request = predictions("llama", json.dumps(body).encode())
    with channel(stack.gw.grpc_address) as ch:
        call = torchserve_stub(ch).StreamPredictions(request, timeout=120)
        messages = [json.loads(m.prediction) for m in call]
        assert variant_of(call) == "stable"
    *tokens, last = messages
    assert "".join(t["token"] for t in tokens) == last["generated_text"]
    assert last["generated_text"] == _expected(stack.llama, 20)


def test_oip_generate_stream_equals_transformers(stack: Stack) -> None:
    prompt = {"name": "text_input", "datatype": "BYTES", "shape": [1], "data": [PROMPT]}
    body = {"inputs": [prompt], "parameters": {"max_new_tokens": 16}}
    url = f"{stack.gw.url}/v2/models/llama/generate_stream"
    *tokens, (_, last) = _sse(url, body, {})
    text = "".join(t["text_output"] for _, t in tokens)
    assert text == last["outputs"][0]["data"][0] == _expected(stack.llama, 16)


def test_a_client_that_leaves_stops_the_worker(stack: Stack) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 96}, "stream": True}
    url = f"{stack.gw.url}/predictions/llama"
    with httpx.stream("POST", url, json=body, timeout=120) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                break  # one token in, the client goes
    labels = {"route": "llama", "variant": "stable", "protocol": "rest", "code": "499"}
    wait_for(lambda: stack.gw.metric("servegate_requests_total", **labels) >= 1, "the 499")
    # The gateway left the marker; the worker took it (only a worker that polls removes it
    # before the gateway's 60 s sweep) and stopped: the next request is served at once.
    wait_for(lambda: not any(stack.cancel_dir.iterdir()), "the worker to take its marker", 60)
    started = time.monotonic()
    answer = httpx.post(url, json={"inputs": PROMPT, "parameters": {"max_new_tokens": 2}})
    assert answer.status_code == 200
    assert time.monotonic() - started < 30


def test_a_stream_to_a_failing_variant_is_an_error_not_a_hang(stack: Stack) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 8}, "stream": True}
    headers = {"X-Servegate-Variant": "missing"}
    started = time.monotonic()
    resp = httpx.post(f"{stack.gw.url}/predictions/llama", json=body, headers=headers, timeout=60)
    assert resp.status_code == 503
    assert resp.json()["type"] == "ServiceUnavailableException"
    assert time.monotonic() - started < 10
    with channel(stack.gw.grpc_address) as ch:
        request = predictions("llama", json.dumps(body).encode())
        call = torchserve_stub(ch).StreamPredictions(
            request, metadata=(("x-servegate-variant", "missing"),), timeout=60
        )
        with pytest.raises(grpc.RpcError) as err:
            list(call)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_shadow_is_judged_by_tokens(stack: Stack) -> None:
    """Stable (accelerate) and its deepspeed_tp shadow agree on every greedy token."""
    labels = {"route": "llama", "variant": "canary", "measure": "tokens"}
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 12}, "stream": True}
    _sse(f"{stack.gw.url}/predictions/llama", body, {"X-Servegate-Variant": "stable"})
    wait_for(
        lambda: stack.gw.metric("servegate_canary_divergence_count", **labels) >= 1,
        "a token comparison",
        120,
    )
    count = stack.gw.metric("servegate_canary_divergence_count", **labels)
    assert stack.gw.metric("servegate_canary_divergence_sum", **labels) == count  # all 1.0
