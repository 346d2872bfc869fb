"""Which failed upstream attempts are retried, where, and under what budget (as Envoy's
``retry_on: reset,connect-failure`` with a ``retry_budget``).

Retried once: a TorchServe answer that says the worker died under the request (500
"Worker died." or 507, TorchServe's "Out of resources" for a worker killed mid-request), and a
connection that failed before any byte of the request was sent. Never a 4xx, a timeout, or any
other answer the upstream began. The retry goes to another variant of the route in rotation
(weight above 0, not ejected), else to the same one after a short backoff. The budget caps
retries in flight at ``BUDGET_PERCENT`` of requests in flight (at least
``MIN_RETRY_CONCURRENCY``), so a failing backend costs at most ~20% extra upstream attempts,
never a retry storm.
"""

from __future__ import annotations

import random

from gateway.backends import BackendResponse
from gateway.config import Route, Variant

BUDGET_PERCENT = 20.0
MIN_RETRY_CONCURRENCY = 3
BACKOFF_S = (0.025, 0.1)  # uniform jitter between these
WORKER_DIED = b"Worker died"


def retry_reason(response: BackendResponse) -> str | None:
    """``worker_died`` for an answer that says the worker died under the request, else None."""
    if response.status == 507 or (response.status == 500 and WORKER_DIED in response.body[:512]):
        return "worker_died"
    return None


def retry_target(route: Route, failed: Variant, ejected: frozenset[str]) -> Variant:
    """Another variant in rotation (with weight, not ejected) when there is one, else the same."""
    out = ejected | {failed.name}
    others = [v for v in route.variants if v.weight > 0 and v.name not in out]
    return random.choice(others) if others else failed


def backoff_s() -> float:
    return random.uniform(*BACKOFF_S)


class RetryBudget:
    """Retries in flight may be at most ``percent`` of requests in flight (Envoy's
    ``retry_budget``, with its ``min_retry_concurrency``). One per gateway process."""

    def __init__(
        self, percent: float = BUDGET_PERCENT, min_concurrency: int = MIN_RETRY_CONCURRENCY
    ) -> None:
        self.percent = percent
        self.min_concurrency = min_concurrency
        self.requests = 0
        self.retries = 0

    def acquire(self) -> bool:
        allowed = max(self.min_concurrency, self.requests * self.percent / 100)
        if self.retries + 1 > allowed:
            return False
        self.retries += 1
        return True

    def release(self) -> None:
        self.retries -= 1
