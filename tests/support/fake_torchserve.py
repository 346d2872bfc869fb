"""An in-process fake TorchServe: what the gateway calls on a TorchServe, in milliseconds.

It serves, on one loopback port (aiohttp in a background thread), exactly what the gateway's
TorchServe backend uses (``gateway/backends/torchserve.py``, ``gateway/scrape.py``):

    GET  /ping                                 {"status": "Healthy"}
    OPTIONS /  and  OPTIONS /predictions/M/V   an API description, or TorchServe's 404
    POST /predictions/M[/V]                    a deterministic answer, or a scripted fault
    GET  /metrics                              ts_inference_requests_total and the two latency
                                               counters, per model and version

Unknown models and versions get TorchServe's own 404 body (``ModelNotFoundException`` /
``ModelVersionNotFoundException``), which the gateway tells apart from a handler's 404. There is
no token check (the backend config names no ``key_file``) and no gRPC port: a backend without
``grpc_address`` sends TorchServe-gRPC clients' requests over HTTP, which is what it sees here.

Models answer like the real test archives (``handlers/``): an ``mlp`` kind takes rows of 16
floats (native ``{"inputs": [[...]]}`` or an OIP ``features`` tensor) and answers 4 scores per
row; a ``minilm`` kind takes texts (native, plain text or an OIP ``BYTES`` tensor) and answers
unit 384-d embeddings. Answers depend only on the input, so every variant of a kind agrees.
Each model's ``Behaviour`` scripts faults: added latency, a fixed status, every n-th request
failing, perturbed outputs (a given cosine to the true row), hanging, a reset connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from handlers import oip
from handlers.errors import BadRequest
from handlers.manifest import MANIFEST_NAME, Manifest, Task, TensorInfo, archive_file_name

Kind = Literal["mlp", "minilm"]
MLP_IN, MLP_OUT, EMBEDDING = 16, 4, 384
# TorchServe's error bodies for the statuses a test scripts (as its workers produce them).
ERRORS = {
    500: ("InternalServerException", "Worker died."),
    503: ("ServiceUnavailableException", "Prediction failed"),
    507: ("InternalServerException", "Out of resources"),
}
API_DESCRIPTION = {"openapi": "3.0.1", "info": {"title": "TorchServe APIs", "version": "0.12.0"}}


@dataclass
class Behaviour:
    """What a model does besides answering; a test sets it, the fake reads it per request."""

    delay_s: float = 0.0  # added latency before the answer
    status: int | None = None  # answer every request with this status and TorchServe's body
    fail_every: int = 0  # every n-th request answers 500 (a count, not a draw)
    cosine: float | None = None  # perturb each output row to this cosine with the true row
    hang: bool = False  # never answer (until the fake stops)
    reset: bool = False  # close the connection without an answer


@dataclass
class FakeModel:
    kind: Kind
    versions: tuple[str, ...] = ("1.0",)
    behaviour: Behaviour = field(default_factory=Behaviour)


def catalogue() -> dict[str, FakeModel]:
    """The models of the session's real TorchServe and of the canary tests' one."""
    return {
        "mlp": FakeModel("mlp"),
        "mlp_torchscript": FakeModel("mlp"),
        "mlp_aoti": FakeModel("mlp"),
        "mlp_onnx": FakeModel("mlp"),
        "minilm_torchscript": FakeModel("minilm"),
        "minilm_onnx": FakeModel("minilm"),
        "mlp_stable": FakeModel("mlp"),
        "mlp_good": FakeModel("mlp"),
        "mlp_errors": FakeModel("mlp", behaviour=Behaviour(fail_every=5)),
        "mlp_slow": FakeModel("mlp", behaviour=Behaviour(delay_s=0.2)),
        "mlp_perturbed": FakeModel("mlp", behaviour=Behaviour(cosine=0.9)),
    }


def write_store(store: Path, models: Mapping[str, FakeModel]) -> Path:
    """A model store of manifest-only archives (``servegate.json`` in a zip, written through
    ``handlers.manifest``): all the gateway reads of an archive is its signature."""
    store.mkdir(parents=True, exist_ok=True)
    for name, model in models.items():
        for version in model.versions:
            manifest = _manifest(name, model.kind, version)
            with zipfile.ZipFile(store / archive_file_name(name, version), "w") as mar:
                mar.writestr(MANIFEST_NAME, manifest.model_dump_json(indent=2))
    return store


def _manifest(name: str, kind: Kind, version: str) -> Manifest:
    task: Task
    if kind == "mlp":
        task, inputs = "tensor", (TensorInfo(name="features", datatype="FP32", shape=(-1, 16)),)
        outputs = (TensorInfo(name="scores", datatype="FP32", shape=(-1, MLP_OUT)),)
    else:
        task = "text_embedding"
        inputs = (TensorInfo(name="input_ids", datatype="INT64", shape=(-1, -1)),)
        outputs = (TensorInfo(name="embeddings", datatype="FP32", shape=(-1, EMBEDDING)),)
    return Manifest(
        model=name.partition("_")[0],
        format="onnx",
        version=version,
        task=task,
        artifact="model.onnx",
        sha256={},
        inputs=inputs,
        outputs=outputs,
    )


class FakeTorchServe:
    """Start with ``running()``; ``models`` may be changed while it runs (a test's script)."""

    def __init__(self, models: Mapping[str, FakeModel]) -> None:
        self.models = dict(models)
        self.requests: Counter[tuple[str, str]] = Counter()  # (model, version label) -> count
        self._latency_us: Counter[tuple[str, str]] = Counter()
        self._queue_us: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def backend(self, store: Path | None = None, **over: Any) -> dict[str, Any]:
        """A gateway backend config pointing here (``model_store``: for metadata)."""
        config: dict[str, Any] = {
            "kind": "torchserve",
            "inference_url": self.url,
            "metrics_url": self.url,
        }
        if store is not None:
            config["model_store"] = str(store)
        return {**config, **over}

    def behave(self, model: str, **behaviour: Any) -> None:
        self.models[model].behaviour = Behaviour(**behaviour)

    def predict(self, path: str, body: bytes, content_type: str = "application/json") -> Any:
        """What ``POST /predictions/<path>`` answers without faults (for parity checks)."""
        status, answer = _answer(self.models[path.partition("/")[0]].kind, body, content_type)
        assert status == 200, answer
        return answer

    # -- serving ------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ping", self._ping)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_route("OPTIONS", "/", self._describe)
        app.router.add_route("*", "/predictions/{model}", self._predictions)
        app.router.add_route("*", "/predictions/{model}/{version}", self._predictions)
        return app

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "Healthy"})

    async def _describe(self, request: web.Request) -> web.Response:
        return web.json_response(API_DESCRIPTION)

    async def _predictions(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["model"]
        version = request.match_info.get("version")
        model = self.models.get(name)
        if model is None:
            return _error(404, "ModelNotFoundException", f"Model not found: {name}")
        if version is not None and version not in model.versions:
            message = f"Model version: {version} does not exist for model: {name}"
            return _error(404, "ModelVersionNotFoundException", message)
        if request.method == "OPTIONS":
            return web.json_response(API_DESCRIPTION)
        if request.method not in ("POST", "PUT"):
            return _error(405, "MethodNotAllowedException", "Requested method is not allowed")
        arrived = time.perf_counter()
        body = await request.read()
        key = (name, version or "default")
        with self._lock:
            self.requests[key] += 1
            nth = self.requests[key]
            # As TorchServe's: never 0 for a request that was queued at all.
            self._queue_us[key] += max(1, int((time.perf_counter() - arrived) * 1e6))
        started = time.perf_counter()
        answer = await self._serve(model, body, request, nth)
        with self._lock:
            self._latency_us[key] += max(1, int((time.perf_counter() - started) * 1e6))
        return answer

    async def _serve(
        self, model: FakeModel, body: bytes, request: web.Request, nth: int
    ) -> web.StreamResponse:
        b = model.behaviour
        if b.hang:
            await self._stopping.wait()
        if b.reset:
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("reset by the fake")
        if b.delay_s:
            await asyncio.sleep(b.delay_s)
        if b.status is not None:
            kind, message = ERRORS.get(b.status, ("InternalServerException", "failed"))
            return _error(b.status, kind, message)
        if b.fail_every and nth % b.fail_every == 0:
            return _error(500, "InternalServerError", "injected failure")
        status, answer = _answer(model.kind, body, request.content_type)
        if status == 200 and b.cosine is not None:
            answer = _perturbed(answer, b.cosine)
        return web.json_response(answer, status=status)

    async def _metrics(self, request: web.Request) -> web.Response:
        with self._lock:
            counts = dict(self.requests)
            latency = dict(self._latency_us)
            queue = dict(self._queue_us)
        lines = []
        for family, values in (
            ("ts_inference_requests_total", counts),
            ("ts_inference_latency_microseconds", latency),
            ("ts_queue_latency_microseconds", queue),
        ):
            lines.append(f"# HELP {family} fake TorchServe series")
            lines.append(f"# TYPE {family} counter")
            for (model, version), value in sorted(values.items()):
                labels = f'model_name="{model}",model_version="{version}",uuid="fake"'
                lines.append(f"{family}{{{labels}}} {float(value)}")
        text = "\n".join(lines) + "\n"
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        started = threading.Event()
        thread = threading.Thread(target=self._main, args=(started,), daemon=True)
        thread.start()
        assert started.wait(30), "the fake TorchServe did not start"
        self._thread = thread

    def _main(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def up() -> None:
            self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=0.5)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert server is not None and isinstance(server, asyncio.base_events.Server)
            self.port = server.sockets[0].getsockname()[1]

        self._loop.run_until_complete(up())
        started.set()
        self._loop.run_forever()

    def stop(self) -> None:
        async def down() -> None:
            self._stopping.set()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(down(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


@contextmanager
def running(models: Mapping[str, FakeModel] | None = None) -> Iterator[FakeTorchServe]:
    fake = FakeTorchServe(models if models is not None else catalogue())
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


# -- the models ------------------------------------------------------------------------------


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"code": status, "type": kind, "message": message}, status=status)


def _answer(kind: Kind, body: bytes, content_type: str) -> tuple[int, Any]:
    """(status, JSON answer) as the servegate handler gives them for this kind of model."""
    try:
        obj: Any = json.loads(body) if content_type != "text/plain" else None
    except ValueError:
        obj = None
    try:
        if obj is not None and oip.is_oip(obj):
            request = oip.parse(obj)
            rows = _oip_rows(kind, request.inputs)
            name, out = _run(kind, rows)
            flat = [x for row in out for x in row]
            tensor = oip.tensor_out(name, "FP32", [len(out), len(out[0])], flat)
            return 200, oip.response(kind, "1.0", request.id, [tensor])
        rows = _native_rows(kind, obj, body)
    except BadRequest as exc:
        return exc.status, {"code": exc.status, "type": exc.kind, "message": str(exc)}
    name, out = _run(kind, rows)
    return 200, {"outputs" if kind == "mlp" else "embeddings": out}


def _native_rows(kind: Kind, obj: Any, body: bytes) -> list[Any]:
    if kind == "minilm" and obj is None:
        return [body.decode("utf-8", "replace")]
    inputs = obj.get("inputs", obj.get("data")) if isinstance(obj, dict) else None
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest('expected a JSON object {"inputs": [...]}')
    if kind == "minilm":
        if not all(isinstance(t, str) for t in inputs):
            raise BadRequest('"inputs" must be a list of strings')
        return inputs
    return [_mlp_row(row) for row in inputs]


def _oip_rows(kind: Kind, inputs: list[oip.OipTensor]) -> list[Any]:
    [tensor] = inputs
    if kind == "minilm":
        return [str(t) for t in tensor.data]
    if len(tensor.shape) != 2 or tensor.shape[1] != MLP_IN:
        raise BadRequest(f"each input row must have shape [16], got {tensor.shape}")
    return [tensor.data[i : i + MLP_IN] for i in range(0, len(tensor.data), MLP_IN)]


def _mlp_row(row: Any) -> list[float]:
    if not isinstance(row, list) or len(row) != MLP_IN:
        raise BadRequest("each input row must have shape [16]")
    return [float(x) for x in row]


def _run(kind: Kind, rows: list[Any]) -> tuple[str, list[list[float]]]:
    if kind == "mlp":
        weights = [[((i * 7 + j * 3) % 11 - 5) / 10 for i in range(MLP_IN)] for j in range(MLP_OUT)]
        return "scores", [
            [sum(w * x for w, x in zip(ws, row, strict=True)) for ws in weights] for row in rows
        ]
    return "embeddings", [_embedding(text) for text in rows]


def _embedding(text: str) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    draw = random.Random(seed)
    vector = [draw.gauss(0.0, 1.0) for _ in range(EMBEDDING)]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def _perturbed(answer: Any, cosine: float) -> Any:
    key = "outputs" if "outputs" in answer and isinstance(answer["outputs"][0], list) else None
    if key is None:
        return answer
    return {**answer, key: [_rotate(row, cosine) for row in answer[key]]}


def _rotate(row: list[float], cosine: float) -> list[float]:
    """``row`` plus a random orthogonal part, so that cos(row, result) == ``cosine``."""
    noise = [random.gauss(0.0, 1.0) for _ in row]
    norm2 = sum(x * x for x in row) or 1.0
    along = sum(n * x for n, x in zip(noise, row, strict=True)) / norm2
    ortho = [n - along * x for n, x in zip(noise, row, strict=True)]
    scale = (
        math.sqrt(norm2)
        * math.tan(math.acos(cosine))
        / (math.sqrt(sum(o * o for o in ortho)) or 1.0)
    )
    return [x + scale * o for x, o in zip(row, ortho, strict=True)]
