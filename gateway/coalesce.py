"""Coalescing: concurrent single-item requests to one variant joined into one upstream request.

A route with ``coalesce: {max_items, max_wait_ms}`` sends each upstream attempt
(``gateway.forwarding``) through ``Coalescer.predict``. A joinable body (``gateway.joining``)
waits in its (route, variant, kind) group: the group goes upstream when ``max_items`` are
waiting, or ``max_wait_ms`` after its first item arrived, as one joined request whose timeout
is the earliest deadline in it; the answer is split back to each waiting item. Everything
around the attempt stays per client request: metrics, retries, ejection, shadow, analysis.

What an item gets is what it would have got alone:

- the joined request answers 200: its own part of the answer;
- 4xx (one item malformed, the joined request too large), or a 200 that does not split: each
  item is sent alone, so each gets its own answer (``servegate_coalesce_fallbacks_total``);
- 5xx, or a transport error: each item gets that answer or error as its own (so a dead worker
  is retried per client request, and counted against the variant per client request).

Never waiting: a body that cannot join, or a request with no more time left than the wait
(``servegate_coalesce_passed_total``). A client that leaves while its item waits is taken out
of the group (never sent); when every client of a sent group has left, the upstream call is
cancelled. Each process of a multi-process gateway coalesces its own requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass, field

from gateway import joining
from gateway.backends import Backend, BackendResponse, Payload
from gateway.config import Coalesce, Variant
from gateway.errors import UpstreamError
from gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)
MIN_TIMEOUT_S = 0.001
# A group goes before its body would pass this: servegate runs TorchServe with a 16 MiB
# max_request_size, and a larger joined request would be refused, then sent item by item.
MAX_JOINED_BYTES = 12 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    """Where a request goes: its route, the variant chosen and that variant's backend."""

    route: str
    variant: Variant
    backend: Backend

    @property
    def labels(self) -> tuple[str, str]:
        return self.route, self.variant.name

    def task(self) -> str | None:
        """The served model's task (from its archive), None when it cannot be read."""
        try:
            return self.backend.signature(self.variant).task
        except UpstreamError:
            return None

    async def send(self, payload: Payload, deadline: float) -> BackendResponse:
        timeout_s = max(deadline - time.perf_counter(), MIN_TIMEOUT_S)
        return await self.backend.predict(self.variant, payload, timeout_s)


@dataclass
class _Waiting:
    item: joining.Single
    payload: Payload
    deadline: float  # perf_counter time by which the client's answer is due
    arrived: float
    answer: asyncio.Future[BackendResponse]


@dataclass
class _Group:
    target: Target
    due: float  # perf_counter time at which it goes, full or not
    waiting: list[_Waiting] = field(default_factory=list)
    size: int = 0  # bytes the items add to the joined body
    timer: asyncio.TimerHandle | None = None
    sending: asyncio.Task[None] | None = None


class Coalescer:
    """The groups waiting to go upstream, in this process."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics
        self._pending: dict[Hashable, _Group] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def predict(
        self, target: Target, policy: Coalesce, payload: Payload, deadline: float
    ) -> BackendResponse:
        """The answer to ``payload`` alone, joined with others' on the way when it can be."""
        item = joining.single(payload, target.task)
        now = time.perf_counter()
        key = (target.route, target.variant, target.backend, item.key if item else None)
        group = self._pending.get(key)
        if item is not None and group is not None and group.size + item.size > MAX_JOINED_BYTES:
            self._go(key, group)  # full by size: it goes, this item starts the next group
            group = None
        due = group.due if group is not None else now + policy.max_wait_ms / 1000
        if item is None or deadline <= due:
            reason = "not_joinable" if item is None else "deadline"
            self.metrics.coalesce_passed.labels(*target.labels, reason).inc()
            self.metrics.coalesce_items.labels(*target.labels).observe(1)
            return await target.send(payload, deadline)
        loop = asyncio.get_running_loop()
        if group is None:
            group = self._pending[key] = _Group(target, due)
            group.timer = loop.call_later(due - now, self._go, key, group)
        waiting = _Waiting(item, payload, deadline, now, loop.create_future())
        group.waiting.append(waiting)
        group.size += item.size
        if len(group.waiting) >= policy.max_items:
            self._go(key, group)
        try:
            return await waiting.answer
        except asyncio.CancelledError:
            self._leave(key, group, waiting)
            raise

    def _go(self, key: Hashable, group: _Group) -> None:
        if self._pending.get(key) is not group:
            return  # gone already: full before its timer fired
        del self._pending[key]
        if group.timer is not None:
            group.timer.cancel()
        group.sending = asyncio.create_task(self._send(group), name="coalesced")
        self._sending.add(group.sending)
        group.sending.add_done_callback(self._sending.discard)

    def _leave(self, key: Hashable, group: _Group, waiting: _Waiting) -> None:
        """A client left: out of its group while it waits; the call cancelled when every
        client of a group already sent has left."""
        if group.sending is None:
            group.waiting.remove(waiting)
            group.size -= waiting.item.size
            if not group.waiting and self._pending.get(key) is group:
                del self._pending[key]
                if group.timer is not None:
                    group.timer.cancel()
        elif all(w.answer.done() for w in group.waiting):
            group.sending.cancel()

    async def _send(self, group: _Group) -> None:
        target, now = group.target, time.perf_counter()
        waiting = [w for w in group.waiting if not w.answer.done()]
        if not waiting:
            return  # every client left before it went
        for w in waiting:
            self.metrics.coalesce_wait.labels(*target.labels).observe(now - w.arrived)
        if len(waiting) == 1:
            await self._alone(target, waiting[0])
            return
        fallback = await self._joined(target, waiting)
        if fallback is not None:
            self.metrics.coalesce_fallbacks.labels(*target.labels, fallback).inc()
            # A client's bad item is routine; an answer that does not split is not.
            level = logging.DEBUG if fallback == "client_error" else logging.WARNING
            log.log(level, "coalesced %s/%s (%s): each item sent alone", *target.labels, fallback)
            await asyncio.gather(*(self._alone(target, w) for w in waiting))

    async def _joined(self, target: Target, waiting: list[_Waiting]) -> str | None:
        """Send the items as one request and answer each from it; else why each must go alone
        (``client_error``: the joined request was answered 4xx; ``unsplittable``)."""
        self.metrics.coalesce_items.labels(*target.labels).observe(len(waiting))
        items = [w.item for w in waiting]
        try:
            response = await target.send(joining.join(items), min(w.deadline for w in waiting))
        except UpstreamError as exc:
            outcomes: list[BackendResponse | BaseException] = [own_copy(exc) for _ in waiting]
        except Exception as exc:
            log.exception("a coalesced request of %s/%s failed", *target.labels)
            outcomes = [exc for _ in waiting]
        else:
            if 400 <= response.status < 500:
                return "client_error"
            if response.status >= 500:
                outcomes = [response for _ in waiting]
            else:
                parts = joining.split(items, response) if response.status == 200 else None
                if parts is None:
                    return "unsplittable"
                outcomes = list(parts)
        for w, outcome in zip(waiting, outcomes, strict=True):
            _answer(w, outcome)
        return None

    async def _alone(self, target: Target, waiting: _Waiting) -> None:
        self.metrics.coalesce_items.labels(*target.labels).observe(1)
        try:
            response = await target.send(waiting.payload, waiting.deadline)
        except Exception as exc:
            _answer(waiting, exc)
        else:
            _answer(waiting, response)


def _answer(waiting: _Waiting, outcome: BackendResponse | BaseException) -> None:
    if waiting.answer.done():
        return  # its client left meanwhile
    if isinstance(outcome, BaseException):
        waiting.answer.set_exception(outcome)
    else:
        waiting.answer.set_result(outcome)


def own_copy(exc: UpstreamError) -> UpstreamError:
    """The error one item gets as if its request had gone alone: a fresh exception per client
    (the forwarding marks it with the variant and raises it in that client's task)."""
    copy = type(exc)(exc.message)
    copy.before_sent = exc.before_sent
    return copy
