"""The text-generation model service: TorchServe batches in, generated text out.

A request is either answered in one piece (``{"generated_text": ..., "details": {...}}`` per
prompt, or an OIP v2 response with a ``text_output`` BYTES tensor), or, with ``"stream": true``,
piece by piece: every new piece of text goes to the client at once as a TorchServe intermediate
response, one JSON line ``{"token": "..."}``, and the last line is the whole answer. The gateway
turns those lines into Server-Sent Events or gRPC stream messages.

Requests run one after another: TorchServe's handler model has no continuous batching (a
generation archive's batch size is 1). A request whose client has gone (``CancelSignal``) stops
at the next token.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from handlers import oip
from handlers.errors import BadRequest
from handlers.generation.cancel import CancelSignal
from handlers.generation.engine import Generated, Generator
from handlers.generation.request import GenerationRequest, Limits, parse_request
from handlers.service import WorkerContext, error_body

log = logging.getLogger(__name__)

# (request index, one JSON line) -> sent to the client now; TorchServe's intermediate response.
Sender = Callable[[int, bytes], None]
STREAM_CONTENT_TYPE = "application/jsonlines"


class GenerationService:
    def __init__(
        self,
        generator: Generator,
        limits: Limits,
        name: str,
        version: str,
        *,
        cancel: CancelSignal,
        agree: Callable[[bool], bool] = lambda flag: flag,
        resources: object = None,
    ) -> None:
        self.generator = generator
        self.limits = limits
        self.name = name
        self.version = version
        self.cancel = cancel
        # Tensor-parallel ranks must stop together: rank 0's view of "the client left" wins.
        self.agree = agree
        self.resources = resources  # kept alive with the service (e.g. an offload folder)

    def handle(self, batch: list[dict[str, Any]], ctx: WorkerContext, send: Sender) -> list[bytes]:
        answers = []
        for idx, request in enumerate(batch):
            answers.append(self._one(idx, request, ctx, send))
        return answers

    def _one(self, idx: int, raw: dict[str, Any], ctx: WorkerContext, send: Sender) -> bytes:
        body = raw.get("body", raw.get("data"))
        try:
            request = parse_request(body, self.limits)
            request_id = self.cancel.request_id(ctx.get_all_request_header(idx))
            if request.stream:
                ctx.set_response_content_type(idx, STREAM_CONTENT_TYPE)
                return self._stream(idx, request, request_id, send)
            ctx.set_response_content_type(idx, "application/json")
            return _dumps(self._unary(request, request_id))
        except BadRequest as exc:
            ctx.set_response_status(exc.status, "Bad Request", idx)
            ctx.set_response_content_type(idx, "application/json")
            return _dumps(error_body(exc, oip.is_oip(body)))

    def _unary(self, request: GenerationRequest, request_id: str | None) -> Any:
        done = [self._generate(prompt, request, request_id, None) for prompt in request.prompts]
        if request.is_oip:
            return self._oip_answer(request, done)
        answers = [_native(d) for d in done]
        return answers[0] if request.single else answers

    def _stream(
        self, idx: int, request: GenerationRequest, request_id: str | None, send: Sender
    ) -> bytes:
        started = time.perf_counter()
        first: list[float] = []

        def piece(text: str) -> None:
            if not first:
                first.append(time.perf_counter() - started)
            send(idx, _dumps({"token": text}))

        result = self._generate(request.prompts[0], request, request_id, piece)
        answer = self._oip_answer(request, [result]) if request.is_oip else _native(result)
        if first:
            log.debug("first token after %.1f ms", first[0] * 1000)
        return _dumps(answer)

    def _generate(
        self,
        prompt: str,
        request: GenerationRequest,
        request_id: str | None,
        on_text: Callable[[str], None] | None,
    ) -> Generated:
        def gone() -> bool:
            return self.agree(self.cancel.is_set(request_id))

        return self.generator.generate(prompt, request.params, on_text, gone)

    def _oip_answer(self, request: GenerationRequest, done: list[Generated]) -> dict[str, Any]:
        output = oip.tensor_out("text_output", "BYTES", [len(done)], [d.text for d in done])
        body = oip.response(self.name, self.version, request.oip_id, [output])
        body["parameters"] = {"finish_reasons": [d.finish_reason for d in done]}
        return body


def _native(done: Generated) -> dict[str, Any]:
    return {
        "generated_text": done.text,
        "details": {
            "finish_reason": done.finish_reason,
            "generated_tokens": len(done.token_ids),
            "prompt_tokens": done.prompt_tokens,
        },
    }


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"
