"""Coalescing in the data plane against an in-process fake backend: when a group goes (full,
or after the wait), what each client gets when the joined request fails, clients that leave,
deadlines shorter than the wait, and the joined request's timeout."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from typing import Any

import pytest

from gateway import coalesce
from gateway.backends import BackendResponse, Payload
from gateway.config import Variant
from gateway.dataplane import DataPlane
from gateway.errors import BackendUnavailable, UpstreamError
from gateway.state import Table
from tests.gateway.test_dataplane import ROUTES, FakeBackend, make_plane, requests, run


class Doubling(FakeBackend):
    """Answers ``{"inputs": [x, ...]}`` with ``{"outputs": [[2x], ...]}`` as a worker would
    (after any scripted ``answers``); ``gate``, when set, holds every answer until it opens."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate: asyncio.Event | None = None

    async def predict(
        self, variant: Variant, payload: Payload, timeout_s: float
    ) -> BackendResponse:
        if self.answers:
            return await super().predict(variant, payload, timeout_s)
        self.calls.append((variant.name, payload, timeout_s))
        if self.gate is not None:
            await self.gate.wait()
        rows = json.loads(payload.body)["inputs"]
        body = json.dumps({"outputs": [[2 * x] for x in rows]}).encode()
        return BackendResponse(200, body, "application/json")


def coalescing(max_items: int = 8, max_wait_ms: float = 200) -> tuple[DataPlane, Doubling]:
    route = {**ROUTES["mlp"], "coalesce": {"max_items": max_items, "max_wait_ms": max_wait_ms}}
    dp, fakes = make_plane({"mlp": route})
    backend = Doubling("a")
    dp.gw.table = Table(dp.gw.table.loaded, {"a": backend, "b": fakes["b"]})
    return dp, backend


def body(x: int) -> Payload:
    return Payload(json.dumps({"inputs": [x]}).encode(), "application/json")


async def infer(dp: DataPlane, x: int, deadline_s: float | None = None) -> BackendResponse:
    with dp.inference("mlp", "rest") as call:
        out = await call.infer(body(x), call.facts({}, dict, None), deadline_s)
    return out.response


async def together(*works: Awaitable[BackendResponse]) -> list[BackendResponse]:
    return list(await asyncio.gather(*works))


def sample(dp: DataPlane, name: str, **labels: str) -> float:
    labels = {"route": "mlp", "variant": "stable", **labels}
    return dp.gw.metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_full_group_goes_at_once_and_each_client_gets_its_own_row() -> None:
    dp, backend = coalescing(max_items=3, max_wait_ms=1000)

    async def work() -> tuple[list[BackendResponse], float]:
        started = time.perf_counter()
        answers = await asyncio.gather(*(infer(dp, x) for x in (1, 2, 3)))
        return answers, time.perf_counter() - started

    answers, elapsed = run(dp, work())
    assert elapsed < 0.5  # full: it did not wait for max_wait_ms
    assert [json.loads(a.body) for a in answers] == [{"outputs": [[2 * x]]} for x in (1, 2, 3)]
    assert [json.loads(c[1].body) for c in backend.calls] == [{"inputs": [1, 2, 3]}]
    assert requests(dp, "mlp", "stable", "200") == 3  # client requests, not upstream ones
    assert sample(dp, "servegate_coalesce_items_sum") == 3
    assert sample(dp, "servegate_coalesce_items_count") == 1


def test_a_group_that_is_not_full_goes_after_the_wait() -> None:
    dp, backend = coalescing(max_items=8, max_wait_ms=50)
    answers = run(dp, together(infer(dp, 1), infer(dp, 2)))
    assert [a.status for a in answers] == [200, 200]
    assert [json.loads(c[1].body) for c in backend.calls] == [{"inputs": [1, 2]}]
    assert sample(dp, "servegate_coalesce_wait_seconds_count") == 2


@pytest.mark.parametrize("status", [500, 503])
def test_a_joined_5xx_is_each_clients_own(status: int) -> None:
    dp, backend = coalescing(max_items=2)
    backend.answers = [BackendResponse(status, b'{"message": "failed"}', "application/json")]
    answers = run(dp, together(infer(dp, 1), infer(dp, 2)))
    assert [a.status for a in answers] == [status, status]
    assert requests(dp, "mlp", "stable", str(status)) == 2 and len(backend.calls) == 1


def test_a_joined_transport_error_is_each_clients_own_error() -> None:
    dp, backend = coalescing(max_items=2)
    backend.answers = [BackendUnavailable("reset")]

    async def work() -> list[Any]:
        return await asyncio.gather(infer(dp, 1), infer(dp, 2), return_exceptions=True)

    first, second = run(dp, work())
    assert isinstance(first, UpstreamError) and isinstance(second, UpstreamError)
    assert first is not second and first.variant == second.variant == "stable"
    assert requests(dp, "mlp", "stable", "503") == 2
    errors = {"route": "mlp", "variant": "stable", "protocol": "rest", "kind": "unavailable"}
    assert dp.gw.metrics.registry.get_sample_value("servegate_upstream_errors_total", errors) == 2


def test_a_client_that_leaves_while_waiting_is_never_sent() -> None:
    dp, backend = coalescing(max_items=8, max_wait_ms=200)

    async def work() -> BackendResponse:
        leaving = asyncio.create_task(infer(dp, 1))
        staying = asyncio.create_task(infer(dp, 2))
        await asyncio.sleep(0.02)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        return await staying

    answer = run(dp, work())
    assert json.loads(answer.body) == {"outputs": [[4]]}
    assert [c[1] for c in backend.calls] == [body(2)]  # alone, as the client sent it
    assert requests(dp, "mlp", "stable", "499") == 1
    assert (dp.gw.requests.abandoned, dp.gw.requests.in_flight) == (1, 0)


def test_a_group_whose_clients_all_left_cancels_its_call() -> None:
    dp, backend = coalescing(max_items=2)
    backend.gate = asyncio.Event()

    async def work() -> None:
        tasks = [asyncio.create_task(infer(dp, x)) for x in (1, 2)]
        while not backend.calls:
            await asyncio.sleep(0.005)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.01)
        assert not dp.gw.coalescer._sending  # the joined call was cancelled, not left running

    run(dp, work())
    assert requests(dp, "mlp", "stable", "499") == 2


def test_a_deadline_shorter_than_the_wait_never_waits() -> None:
    dp, _ = coalescing(max_items=8, max_wait_ms=500)

    async def work() -> float:
        started = time.perf_counter()
        await infer(dp, 1, deadline_s=0.2)
        return time.perf_counter() - started

    assert run(dp, work()) < 0.2
    assert sample(dp, "servegate_coalesce_passed_total", reason="deadline") == 1


def test_the_joined_request_is_due_by_the_earliest_deadline() -> None:
    dp, backend = coalescing(max_items=2, max_wait_ms=100)
    run(dp, together(infer(dp, 1, deadline_s=4.0), infer(dp, 2, deadline_s=2.0)))
    [(_, _, timeout_s)] = backend.calls
    assert 1.5 < timeout_s <= 2.0


def test_a_body_that_cannot_join_goes_alone_at_once() -> None:
    dp, backend = coalescing(max_items=8, max_wait_ms=500)
    several = Payload(b'{"inputs": [1, 2]}', "application/json")

    async def work() -> float:
        started = time.perf_counter()
        with dp.inference("mlp", "rest") as call:
            await call.infer(several, call.facts({}, dict, None))
        return time.perf_counter() - started

    assert run(dp, work()) < 0.4
    assert [c[1] for c in backend.calls] == [several]
    assert sample(dp, "servegate_coalesce_passed_total", reason="not_joinable") == 1


def test_a_group_goes_before_its_joined_body_would_pass_the_size_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(coalesce, "MAX_JOINED_BYTES", 2 * len(body(1).body))
    dp, backend = coalescing(max_items=8, max_wait_ms=50)
    answers = run(dp, together(infer(dp, 1), infer(dp, 2), infer(dp, 3)))
    assert [a.status for a in answers] == [200, 200, 200]
    sent = [json.loads(c[1].body) for c in backend.calls]
    assert sent == [{"inputs": [1, 2]}, {"inputs": [3]}]


def test_an_answer_that_does_not_split_sends_each_item_alone() -> None:
    dp, backend = coalescing(max_items=2)
    backend.answers = [BackendResponse(200, b'{"outputs": "not per item"}', "application/json")]
    answers = run(dp, together(infer(dp, 1), infer(dp, 2)))
    assert [json.loads(a.body) for a in answers] == [{"outputs": [[2]]}, {"outputs": [[4]]}]
    assert [json.loads(c[1].body) for c in backend.calls] == [
        {"inputs": [1, 2]},
        {"inputs": [1]},
        {"inputs": [2]},
    ]
    assert sample(dp, "servegate_coalesce_fallbacks_total", reason="unsplittable") == 1
