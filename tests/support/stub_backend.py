"""A small real HTTP backend that speaks just enough of TorchServe's inference API for the
gateway (``/ping``, ``OPTIONS`` and ``POST /predictions/{model}/{version}``), with behaviour a
test controls from the request body:

    {"hold": true}      wait until the test calls ``release()`` (requests in flight on demand)
    {"sleep": 0.2}      answer after this many seconds
    {"status": 507}     answer with this status and TorchServe's error body for it

Anything else is answered 200 at once with ``{"model": ..., "echo": <its "n">}``.
It counts requests waiting on the hold and answered, so a test waits for state, not time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERRORS = {
    500: ("InternalServerException", "Worker died."),
    503: ("ServiceUnavailableException", "Prediction failed"),
    507: ("InternalServerException", "Out of resources"),
}


class StubBackend:
    def __init__(self, status: int = 200) -> None:
        self.status = status  # for a body that names none
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.holding = 0
        self.answered = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def config(self) -> dict[str, Any]:
        return {"inference_url": self.url}

    def release(self) -> None:
        self.gate.set()

    def count(self, field: str, delta: int) -> None:
        with self.lock:
            setattr(self, field, getattr(self, field) + delta)


def _handler(stub: StubBackend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as TorchServe

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._json(200, {"status": "Healthy"})

        def do_OPTIONS(self) -> None:
            self._json(200, {})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            if body.get("hold"):
                stub.count("holding", 1)
                stub.gate.wait(120)
                stub.count("holding", -1)
            if body.get("sleep"):
                threading.Event().wait(float(body["sleep"]))
            status = int(body.get("status", stub.status))
            model = self.path.split("/")[2] if self.path.count("/") >= 2 else ""
            if status == 200:
                answer: dict[str, Any] = {"model": model, "echo": body.get("n")}
            else:
                kind, message = ERRORS.get(status, ("InternalServerException", "failed"))
                answer = {"code": status, "type": kind, "message": message}
            self._json(status, answer)
            stub.count("answered", 1)

        def _json(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


@contextmanager
def stub_backend(status: int = 200) -> Iterator[StubBackend]:
    stub = StubBackend(status)
    stub.thread.start()
    try:
        yield stub
    finally:
        stub.release()
        stub.server.shutdown()
        stub.server.server_close()
