"""One served model: a runtime composed with a task codec, driven by TorchServe batches.

Every request of a TorchServe batch is decoded on its own; a malformed one (an empty body
included) gets its own 400 (per-index status) and the rest run together as one forward pass.
Whatever decoding one request raises is that request's 400: left to TorchServe, any exception
fails the whole batch with 503.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from handlers import oip
from handlers.errors import BadRequest
from handlers.manifest import Manifest
from handlers.runtimes import Runtime, load_runtime
from handlers.tasks import TaskCodec, make_codec

log = logging.getLogger(__name__)

HANDLER_TIME_HEADER = "X-Servegate-Handler-Ms"
BATCH_SIZE_HEADER = "X-Servegate-Batch-Size"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class WorkerContext(Protocol):
    """The part of TorchServe's ``Context`` the service uses (a fake stands in for tests)."""

    @property
    def system_properties(self) -> dict[str, Any]: ...

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None: ...

    def set_response_content_type(self, idx: int, value: str) -> None: ...

    def set_response_header(self, idx: int, key: str, value: str) -> None: ...

    def get_all_request_header(self, idx: int) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Decoded:
    rows: list[Any]
    single: bool
    oip_request: oip.OipRequest | None


@dataclass
class Prepared:
    """A batch after preprocessing: decoded requests by index, and answers known already."""

    answers: list[Any]
    decoded: dict[int, Decoded] = field(default_factory=dict)


class ModelService:
    """preprocess (decode each request) -> inference (one forward pass) -> postprocess."""

    def __init__(
        self, manifest: Manifest, runtime: Runtime, codec: TaskCodec, name: str, version: str
    ) -> None:
        self.manifest = manifest
        self.runtime = runtime
        self.codec = codec
        self.name = name  # the served model name (TorchServe's), used in OIP answers
        self.version = version

    @classmethod
    def load(
        cls, model_dir: Path, device: torch.device, name: str = "", version: str = ""
    ) -> ModelService:
        manifest = Manifest.read(model_dir)
        manifest.verify(model_dir)
        runtime = load_runtime(manifest.format, model_dir / manifest.artifact, device)
        codec = make_codec(manifest, model_dir, device)
        runtime.run(codec.collate(codec.example_rows()))  # warm-up: first runs are slow
        log.info(
            "loaded %s (%s, %s) on %s",
            manifest.model,
            manifest.format,
            manifest.task,
            runtime.device,
        )
        return cls(manifest, runtime, codec, name or manifest.model, version)

    def handle(self, batch: list[dict[str, Any]], ctx: WorkerContext) -> list[bytes]:
        started = time.perf_counter()
        prepared = self.preprocess(batch, ctx)
        out = self.inference(prepared) if prepared.decoded else None
        answers = self.postprocess(out, prepared)
        elapsed_ms = f"{(time.perf_counter() - started) * 1000:.3f}"
        results = []
        for idx, answer in enumerate(answers):
            ctx.set_response_content_type(idx, "application/json")
            ctx.set_response_header(idx, HANDLER_TIME_HEADER, elapsed_ms)
            ctx.set_response_header(idx, BATCH_SIZE_HEADER, str(len(batch)))
            results.append(json.dumps(answer, separators=(",", ":")).encode())
        return results

    def preprocess(self, batch: list[dict[str, Any]], ctx: WorkerContext) -> Prepared:
        """Decode every request on its own; a malformed one gets its 400 here."""
        prepared = Prepared(answers=[None] * len(batch))
        for idx, request in enumerate(batch):
            body = request.get("body", request.get("data"))
            try:
                if _is_empty(body):
                    raise BadRequest(self._no_body(request, ctx.get_all_request_header(idx)))
                prepared.decoded[idx] = self.decode(body)
            except BadRequest as exc:
                # The detail goes in the body only: the status line must stay a fixed phrase.
                ctx.set_response_status(exc.status, "Bad Request", idx)
                prepared.answers[idx] = error_body(exc, oip.is_oip(body))
            except Exception as exc:  # hostile input may raise anything, from any depth
                log.warning("request %d of a batch could not be decoded", idx, exc_info=True)
                refused = BadRequest(f"the request could not be decoded ({type(exc).__name__})")
                ctx.set_response_status(refused.status, "Bad Request", idx)
                prepared.answers[idx] = error_body(refused, oip.is_oip(body))
        self._finish(prepared, batch, ctx)
        return prepared

    def _finish(self, prepared: Prepared, batch: list[dict[str, Any]], ctx: WorkerContext) -> None:
        """The codec's batch-wide step over every decoded row; a request with a row that
        fails there gets its own 400, the others keep their finished rows."""
        rows = [row for d in prepared.decoded.values() for row in d.rows]
        if not rows:
            return
        finished, failed = self.codec.finish(rows)
        start = 0
        for idx, d in list(prepared.decoded.items()):
            end = start + len(d.rows)
            faults = [failed[p] for p in range(start, end) if p in failed]
            if faults:
                ctx.set_response_status(faults[0].status, "Bad Request", idx)
                body = batch[idx].get("body", batch[idx].get("data"))
                prepared.answers[idx] = error_body(faults[0], oip.is_oip(body))
                del prepared.decoded[idx]
            else:
                prepared.decoded[idx] = replace(d, rows=finished[start:end])
            start = end

    def inference(self, prepared: Prepared) -> torch.Tensor:
        """One forward pass over the rows of every well-formed request of the batch."""
        rows = [row for d in prepared.decoded.values() for row in d.rows]
        return self.runtime.run(self.codec.collate(rows))

    def postprocess(self, out: torch.Tensor | None, prepared: Prepared) -> list[Any]:
        """Hand each request its own output rows, encoded in the protocol it spoke."""
        start = 0
        for idx, d in prepared.decoded.items():
            assert out is not None
            prepared.answers[idx] = self.encode(out[start : start + len(d.rows)], d)
            start += len(d.rows)
        return prepared.answers

    def decode(self, body: object) -> Decoded:
        if oip.is_oip(body):
            assert isinstance(body, dict)
            request = oip.parse(body)
            return Decoded(self.codec.decode_oip(request.inputs), False, request)
        rows, single = self.codec.decode_native(body)
        return Decoded(rows, single, None)

    def encode(self, out: torch.Tensor, decoded: Decoded) -> Any:
        """The answer; inputs the model saw only in part are named in it: ``truncated`` in a
        native answer, ``parameters.truncated_inputs`` in an OIP one (indices of the rows)."""
        cut = self.codec.truncated(decoded.rows)
        if decoded.oip_request is None:
            answer = self.codec.encode_native(out, decoded.single)
            if cut and isinstance(answer, dict):
                answer["truncated"] = cut
            return answer
        outputs = self.codec.encode_oip(out)
        wanted = {o.get("name") for o in decoded.oip_request.outputs or []}
        if wanted:
            outputs = [o for o in outputs if o["name"] in wanted]
        body = oip.response(self.name, self.version, decoded.oip_request.id, outputs)
        if cut:
            body["parameters"] = {"truncated_inputs": cut}
        return body

    def _no_body(self, request: dict[str, Any], headers: dict[str, Any]) -> str:
        """Why there is nothing to decode: an empty body, or a form TorchServe took apart."""
        content_type = next(
            (str(v) for k, v in headers.items() if k.lower() == "content-type"), "none"
        )
        accepted = f"this model accepts {self.codec.accepts}"
        # TorchServe reads a form's body as form fields (or drops it), never as "body".
        is_form = content_type.split(";")[0].strip().lower() in FORM_TYPES
        if is_form or set(request) - {"body", "data"}:
            return (
                f"the body was sent as Content-Type {content_type}, which is read as form "
                f"fields, not as a request (curl -d sends application/x-www-form-urlencoded "
                f"unless -H 'Content-Type: ...' says otherwise); {accepted}"
            )
        return f"the request body is empty (Content-Type {content_type}); {accepted}"


def _is_empty(body: object) -> bool:
    if body is None:
        return True
    if isinstance(body, (str, bytes, bytearray)):
        return not body.strip()
    return False


def error_body(exc: BadRequest, is_oip: bool) -> dict[str, Any]:
    if is_oip:
        return {"error": str(exc)}
    return {"code": exc.status, "type": exc.kind, "message": str(exc)}
