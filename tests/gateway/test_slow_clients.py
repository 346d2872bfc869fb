"""Slow and abusive clients (issue 14, items 3-4): header and body deadlines, a connection cap
per listener, and header count/size limits, each answered in the protocol's shape."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.support import MLP_ROW, run_gateway
from tests.gateway.test_errors import oip_shape, ts_shape

pytestmark = pytest.mark.integration
BODY = json.dumps({"inputs": [MLP_ROW]}).encode()


def raw_exchange(port: int, data: bytes, timeout_s: float = 30) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_too_many_or_too_large_headers_are_431(fake_config_path: Path) -> None:
    many = {f"X-Filler-{i}": "x" for i in range(200)}
    with run_gateway(fake_config_path) as gw, gw.client() as c:
        fine = {f"X-Filler-{i}": "x" for i in range(50)}
        assert c.post("/predictions/mlp", content=BODY, headers=fine).status_code == 200
        ts_shape(c.post("/predictions/mlp", content=BODY, headers=many), 431)
        ts_shape(c.post("/predictions/mlp", content=BODY, headers={"X-Big": "x" * 65536}), 431)
        oip_shape(c.post("/v2/models/mlp/infer", content=b"{}", headers=many), 431)
        assert httpx.get(f"{gw.admin_url}/metrics", headers=many).status_code == 431
        # A megabyte of headers is refused while it arrives, not buffered whole.
        head = b"POST /predictions/mlp HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"y" * 2**20
        answer = raw_exchange(gw.settings.port, head + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
        assert gw.metric("servegate_http_refusals_total", reason="headers_too_large") == 5


async def _trickle(port: int, lines: int, every_s: float) -> tuple[bytes, float]:
    """A slowloris client: one header line every ``every_s``; what it got back, and when."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /predictions/mlp HTTP/1.1\r\n")
    try:
        for i in range(lines):
            await writer.drain()
            try:
                got = await asyncio.wait_for(reader.read(65536), every_s)
                return got, time.monotonic() - started
            except TimeoutError:
                writer.write(f"X-Slow-{i}: x\r\n".encode())
        return b"", time.monotonic() - started
    finally:
        writer.close()


async def _legit(url: str, n: int) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(n):
            t = time.perf_counter()
            resp = await client.post(
                url, content=BODY, headers={"Content-Type": "application/json"}
            )
            assert resp.status_code == 200, resp.text
            latencies.append(time.perf_counter() - t)
    return latencies


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98]


@pytest.mark.slow
def test_slow_clients_are_shed_and_legit_traffic_is_served(fake_config_path: Path) -> None:
    with run_gateway(fake_config_path, header_timeout_s=3) as gw:
        url = f"{gw.url}/predictions/mlp"

        async def main() -> tuple[list[float], list[tuple[bytes, float]], list[float]]:
            baseline = await _legit(url, 200)
            slow = [asyncio.create_task(_trickle(gw.settings.port, 60, 1.0)) for _ in range(300)]
            await asyncio.sleep(0.5)  # all 300 connected and trickling
            during = await _legit(url, 200)
            return baseline, list(await asyncio.gather(*slow)), during

        baseline, slow, during = asyncio.run(main())
        shed = [got for got, after_s in slow if got.startswith(b"HTTP/1.1 408 ")]
        assert len(shed) == 300, [got[:40] for got, _ in slow if got not in shed][:3]
        # Shed by the header deadline (3 s), long before their 60 lines were sent.
        assert max(after_s for _, after_s in slow) < 30
        assert gw.metric("servegate_http_refusals_total", reason="header_timeout") == 300
        print(
            f"\nslow clients: 300 shed with 408; legit p99 {p99(baseline) * 1000:.1f} ms "
            f"baseline, {p99(during) * 1000:.1f} ms meanwhile "
            f"({p99(during) / p99(baseline):.2f}x)"
        )


def test_a_body_that_does_not_arrive_in_time_is_408(fake_config_path: Path) -> None:
    with run_gateway(fake_config_path, body_timeout_s=1) as gw:
        for path, shape in (("/predictions/mlp", ts_shape), ("/v2/models/mlp/infer", oip_shape)):
            with socket.create_connection(("127.0.0.1", gw.settings.port), timeout=30) as sock:
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(BODY)}\r\n\r\n".encode()
                    + BODY[:5]
                )
                answer = b""
                while chunk := sock.recv(65536):  # the server closes after its 408
                    answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 ") and b"connection: close" in head.lower()
            shape(httpx.Response(408, content=body), 408)


def test_connections_over_the_cap_are_closed_at_accept(fake_config_path: Path) -> None:
    with run_gateway(fake_config_path, max_connections=20, header_timeout_s=60) as gw:
        port = gw.settings.port
        held = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(20)]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as extra:
                extra.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
                assert _closed_without_answer(extra)
            assert gw.metric("servegate_http_refusals_total", reason="connection_limit") == 1
        finally:
            for sock in held:
                sock.close()

        def accepts() -> Any:
            try:
                return httpx.get(f"{gw.url}/ping", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        deadline = time.monotonic() + 30  # the held connections' close reaches the server
        while not accepts():
            assert time.monotonic() < deadline, "the listener did not accept again"
            time.sleep(0.1)


def _closed_without_answer(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
