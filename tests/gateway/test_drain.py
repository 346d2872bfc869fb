"""Draining (issue 14, item 8). On SIGTERM the gateway stops accepting on every listener at
once, finishes the requests in flight (HTTP and gRPC, unary and streaming), answers a request
that arrives on a kept-alive connection (with ``Connection: close``) instead of resetting it,
refuses admin writes, gives up its pid file, and exits 0; what outlives the drain bound (the
longest route timeout plus a margin) is cut, and the gateway still exits.

A real gateway process and a real HTTP backend written for the test, which holds requests until
the test releases them (``tests/support/stub_backend.py``): nothing here waits on time.
"""

from __future__ import annotations

import http.client
import json
import queue
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway import pidfile
from gateway.grpc.stubs import inference_pb2 as ts_pb
from tests.gateway.grpc.support import torchserve_stub
from tests.gateway.support import (
    TOKEN,
    fire,
    spawn_gateway,
    variant,
    wait_for,
    write_config,
)
from tests.support.stub_backend import StubBackend, stub_backend

# Gateway processes started, drained and restarted: seconds each (tests/conftest.py).
pytestmark = pytest.mark.slow

HOLD = {"hold": True}


@pytest.fixture
def stub() -> Iterator[StubBackend]:
    with stub_backend() as backend:
        yield backend


def stub_config(tmp_path: Path, stub: StubBackend, timeout_s: float = 30.0) -> Path:
    route = {
        "variants": [variant("a", "m", 100, backend="stub"), variant("b", "m", 0, backend="stub")],
        "timeout_s": timeout_s,
    }
    return write_config(tmp_path / "gateway.yaml", {"stub": stub.config()}, {"m": route})


def in_background(url: str, n: int, body: dict[str, Any]) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []
    sender = threading.Thread(target=lambda: answers.extend(fire(url, n, body=body, concurrency=n)))
    sender.start()
    return sender, answers


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_finishes_the_requests_in_flight_and_exits_0(
    tmp_path: Path, stub: StubBackend
) -> None:
    gw = spawn_gateway(stub_config(tmp_path, stub), tmp_path)
    sender, answers = in_background(f"{gw.url}/predictions/m", 9, HOLD)
    wait_for(lambda: stub.holding == 9, "9 requests in flight")
    gw.proc.send_signal(signal.SIGTERM)
    gw.wait_draining()
    # Stopped accepting on every listener at once, given up the pid file, still running.
    assert [refused(p) for p in (gw.port, gw.admin_port, gw.grpc_port)] == [True] * 3
    assert pidfile.read(gw.pid_file) is None
    assert gw.proc.poll() is None
    stub.release()
    sender.join(60)
    assert answers == [(200, "a")] * 9
    assert gw.proc.wait(60) == 0
    log = gw.log_text()
    assert "9 requests in flight" in log
    assert "9 requests answered during the drain, 0 abandoned" in log


def _request(body: dict[str, Any], sequence_id: str = "") -> Any:
    data = json.dumps(body).encode()
    return ts_pb.PredictionsRequest(model_name="m", input={"data": data}, sequence_id=sequence_id)


def test_grpc_calls_in_flight_finish_unary_and_streaming(tmp_path: Path, stub: StubBackend) -> None:
    gw = spawn_gateway(stub_config(tmp_path, stub), tmp_path)
    outgoing: queue.Queue[Any] = queue.Queue()
    with grpc.insecure_channel(gw.grpc_address) as channel:
        client = torchserve_stub(channel)
        unary = client.Predictions.future(_request(HOLD), timeout=60)
        stream = client.StreamPredictions2(iter(outgoing.get, None), timeout=60)
        outgoing.put(_request(HOLD, "s0"))
        wait_for(lambda: stub.holding == 2, "a unary call and a stream in flight")
        gw.proc.send_signal(signal.SIGTERM)
        gw.wait_draining()
        assert refused(gw.grpc_port)
        outgoing.put(_request({"n": 1}, "s1"))  # the open stream goes on during the drain
        stub.release()
        outgoing.put(None)
        answers = list(stream)
        assert json.loads(unary.result().prediction)["model"] == "m"
    assert [(a.sequence_id, a.HasField("status")) for a in answers] == [
        ("s0", False),
        ("s1", False),
    ]
    assert gw.proc.wait(60) == 0


def test_a_kept_alive_connection_gets_answers_not_a_reset_and_admin_writes_are_refused(
    tmp_path: Path, stub: StubBackend
) -> None:
    config = stub_config(tmp_path, stub)
    token = tmp_path / "token"
    token.write_text(TOKEN)
    # Idle connections outlive this test's steps whatever the machine's speed.
    env = {"SERVEGATE_GATEWAY_KEEP_ALIVE_S": "300"}
    gw = spawn_gateway(config, tmp_path, "--token-file", str(token), env=env)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    data = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=60)
    admin = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=60)
    try:
        status, _, _ = _exchange(data, "GET", "/v2/health/live")
        assert status == 200
        status, headers, body = _exchange(admin, "GET", "/admin/routes/m", headers=auth)
        assert status == 200 and headers.get("connection") != "close"
        version = json.loads(body)["version"]
        before = config.read_bytes()
        sender, answers = in_background(f"{gw.url}/predictions/m", 1, HOLD)  # holds the drain
        wait_for(lambda: stub.holding == 1, "a request in flight")
        gw.proc.send_signal(signal.SIGTERM)
        gw.wait_draining()

        # A request on a connection opened before the drain: answered, then closed.
        body_sent = json.dumps({"n": 7}).encode()
        headers_sent = {"Content-Type": "application/json"}
        status, headers, body = _exchange(data, "POST", "/predictions/m", body_sent, headers_sent)
        assert (status, headers.get("connection")) == (200, "close")
        assert json.loads(body) == {"model": "m", "echo": 7}
        # An admin write on the draining process: refused in the admin API's shape (the
        # process that serves next owns the config), nothing written; reads still answered.
        weights = json.dumps({"weights": {"a": 50, "b": 50}}).encode()
        write = {**auth, "If-Match": f'"{version}"', "Content-Type": "application/json"}
        status, headers, body = _exchange(admin, "PUT", "/admin/routes/m/weights", weights, write)
        assert status == 503 and "shutting down" in json.loads(body)["error"]
        assert headers.get("connection") == "close"
        assert config.read_bytes() == before
        assert not config.with_name("gateway.yaml.audit.jsonl").exists()
    finally:
        data.close()
        admin.close()
    stub.release()
    sender.join(60)
    assert answers == [(200, "a")]
    assert gw.proc.wait(60) == 0


def _exchange(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def test_what_outlives_the_drain_bound_is_cut_and_the_gateway_exits_0(
    tmp_path: Path, stub: StubBackend
) -> None:
    # Bound: the longest route timeout (1 s) plus the margin. A body that never completes
    # (its own deadline is 30 s) and a stream its client keeps open are cut there.
    gw = spawn_gateway(stub_config(tmp_path, stub, timeout_s=1.0), tmp_path)
    outgoing: queue.Queue[Any] = queue.Queue()
    with (
        socket.create_connection(("127.0.0.1", gw.port)) as upload,
        grpc.insecure_channel(gw.grpc_address) as channel,
    ):
        head = b"POST /predictions/m HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        upload.sendall(head + b"Content-Length: 100\r\n\r\n{")
        stream = torchserve_stub(channel).StreamPredictions2(iter(outgoing.get, None))
        outgoing.put(_request({"n": 0}, "s0"))
        assert next(stream).sequence_id == "s0"  # the stream is open and served
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.proc.wait(60) == 0
        with pytest.raises(grpc.RpcError):
            next(stream)
        upload.settimeout(10)
        assert upload.recv(4096) == b""  # closed, with nothing to answer yet
        outgoing.put(None)
    log = gw.log_text()
    assert "cutting 1 connections at the drain bound (1 with a request in progress)" in log
