"""A small real HTTP upstream that streams as a TorchServe generation worker does
(``handlers/generation/service.py``): with ``"stream": true`` a chunked ``application/jsonlines``
answer, one ``{"token": "t<i> "}`` line per token, then the whole answer
``{"generated_text", "details"}``; without it the whole answer at once. It polls
``<cancel_dir>/<X-Servegate-Request-Id>`` after every token and stops as the worker does.

Behaviour from the request body (beside ``inputs`` and ``stream``):

    {"tokens": 5}        how many tokens (default 5)
    {"delay": 0.05}      seconds between tokens (default 0)
    {"break_after": 2}   drop the connection after this many tokens, without an answer
    {"error_after": 2}   send TorchServe's JSON error as the last line after this many tokens
    {"status": 400}      refuse at once with this status (TorchServe's JSON error)

Every request's ``X-Servegate-Request-Id`` and how it ended are kept for the test.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Seen:
    request_id: str | None
    finish: str = "running"  # length, cancelled, broken, error
    tokens: int = 0


@dataclass
class StreamStub:
    cancel_dir: Path | None = None
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def config(self) -> dict[str, Any]:
        return {"inference_url": self.url}

    def cancelled(self, request_id: str | None) -> bool:
        if self.cancel_dir is None or request_id is None:
            return False
        marker = self.cancel_dir / request_id
        if marker.exists():
            marker.unlink()
            return True
        return False


def _handler(running: StreamStub) -> type[BaseHTTPRequestHandler]:
    return type("BoundHandler", (Handler,), {"stub": running})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stub: StreamStub

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._whole(200, {"status": "Healthy"})

    def do_OPTIONS(self) -> None:
        self._whole(200, {})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        seen = Seen(self.headers.get("X-Servegate-Request-Id"))
        with self.stub.lock:
            self.stub.seen.append(seen)
        if isinstance(body.get("inputs"), list):  # OIP v2: its settings are its parameters
            body = {**body, **body.get("parameters", {})}
        if "status" in body:
            seen.finish = "refused"
            error = {"code": body["status"], "type": "BadRequest", "message": "refused"}
            self._whole(int(body["status"]), error)
            return
        if not body.get("stream"):
            self._unary(body, seen)
            return
        self._stream(body, seen)

    def _unary(self, body: dict[str, Any], seen: Seen) -> None:
        """One answer at the end, the marker looked for after every token (as the worker)."""
        for _ in range(int(body.get("tokens", 5))):
            time.sleep(float(body.get("delay", 0)))
            if self.stub.cancelled(seen.request_id):
                seen.finish = "cancelled"
                break
            seen.tokens += 1
        else:
            seen.finish = "length"
        text = "".join(f"t{i} " for i in range(seen.tokens))
        details = {"finish_reason": seen.finish, "generated_tokens": seen.tokens}
        with contextlib.suppress(OSError):  # the gateway may have closed the connection
            self._whole(200, {"generated_text": text, "details": details})

    def _stream(self, body: dict[str, Any], seen: Seen) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/jsonlines")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pieces: list[str] = []
        try:
            for i in range(int(body.get("tokens", 5))):
                if i == body.get("break_after"):
                    time.sleep(float(body.get("delay", 0)))  # the pieces before it are read
                    seen.finish = "broken"
                    self.wfile.write(b'5\r\n{"tok')  # a chunk cut short, then nothing
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if i == body.get("error_after"):
                    seen.finish = "error"
                    error = {"code": 503, "type": "X", "message": "Prediction failed"}
                    self._chunk(error)
                    self._end()
                    return
                time.sleep(float(body.get("delay", 0)))
                if self.stub.cancelled(seen.request_id):
                    seen.finish = "cancelled"
                    break
                pieces.append(f"t{i} ")
                seen.tokens += 1
                self._chunk({"token": pieces[-1]})
            else:
                seen.finish = "length"
            details = {"finish_reason": seen.finish, "generated_tokens": len(pieces)}
            answer = {"generated_text": "".join(pieces), "details": details}
            if isinstance(body.get("inputs"), list):
                answer = _oip_answer("".join(pieces), seen.finish)
            self._chunk(answer)
            self._end()
        except OSError:  # the gateway closed the connection: generate on, as TorchServe
            seen.finish = seen.finish if seen.finish != "running" else "unread"

    def _chunk(self, obj: dict[str, Any]) -> None:
        line = json.dumps(obj).encode() + b"\n"
        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        self.wfile.flush()

    def _end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _whole(self, status: int, obj: dict[str, Any]) -> None:
        raw = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def _oip_answer(text: str, finish: str) -> dict[str, Any]:
    output = {"name": "text_output", "datatype": "BYTES", "shape": [1], "data": [text]}
    return {
        "model_name": "llm",
        "model_version": "1.0",
        "outputs": [output],
        "parameters": {"finish_reasons": [finish]},
    }


@contextmanager
def stream_stub(cancel_dir: Path | None = None) -> Iterator[StreamStub]:
    stub = StreamStub(cancel_dir)
    stub.thread.start()
    try:
        yield stub
    finally:
        stub.server.shutdown()
        stub.server.server_close()
