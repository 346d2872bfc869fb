"""Requests at a fixed rate from a background thread, as a client fleet sends them through a
restart: an open loop (a slow answer does not slow the rate down), every outcome recorded, a
failure with its error text.

``HttpLoad`` sends on pooled keep-alive connections, or (``fresh_connections``) on a new
connection per request. (No gRPC load: a call that reaches grpcio in the instant its server
begins to stop, before the server has taken it, is CANCELLED by gRPC core itself,
grpc/grpc#41785, so a zero-failure gRPC assertion under load would be a flaky one; the drain
tests show that calls in flight finish and that channels move on.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

OK = "ok"


class _Load:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.outcomes: list[str] = []  # OK, or what went wrong
        self.variants: list[str] = []  # the variant that answered each (HTTP), or "-"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the load did not stop"

    @property
    def answered(self) -> int:
        return len(self.outcomes)

    def failures(self) -> Counter[str]:
        return Counter(o for o in self.outcomes if o != OK)

    def by_variant(self) -> Counter[tuple[str, str]]:
        """(variant, "ok" or "failed") counts; "-" for an answer that named no variant."""
        pairs = zip(self.variants, self.outcomes, strict=True)
        return Counter((v, "ok" if o == OK else "failed") for v, o in pairs)

    def _run(self) -> None:
        raise NotImplementedError


class HttpLoad(_Load):
    def __init__(
        self,
        url: str,
        rate: float,
        body: Callable[[int], dict[str, Any]],
        *,
        fresh_connections: bool = False,
    ) -> None:
        super().__init__(rate)
        self.url = url
        self.body = body
        # Connection: close makes the gateway close each connection after its answer.
        self.headers = {"Connection": "close"} if fresh_connections else {}

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        async with httpx.AsyncClient(timeout=60) as client:

            async def one(i: int) -> None:
                try:
                    resp = await client.post(self.url, json=self.body(i), headers=self.headers)
                    ok = resp.status_code == 200
                    outcome = OK if ok else f"{resp.status_code} {resp.text[:200]}"
                    variant = resp.headers.get("x-servegate-variant", "-")
                except httpx.HTTPError as exc:
                    outcome, variant = f"{type(exc).__name__}: {exc}", "-"
                self.variants.append(variant)
                self.outcomes.append(outcome)

            pending: set[asyncio.Task[None]] = set()
            began, i = time.monotonic(), 0
            while not self._stop.is_set():
                task = asyncio.create_task(one(i))
                pending.add(task)
                task.add_done_callback(pending.discard)
                i += 1
                await asyncio.sleep(max(0.0, began + i / self.rate - time.monotonic()))
            if pending:
                await asyncio.wait(pending)
