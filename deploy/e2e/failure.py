"""TorchServe killed under traffic, as a crash or an OOM kill would take it: SIGKILL to the
container's init from the host (``docker kill`` would mark it stopped by hand, and Docker does
not restart such a container). Clients must get 503 quickly while it is down, and the gateway
must serve again on its own once Docker has restarted it, with the keys the new TorchServe
minted."""

from __future__ import annotations

import json
import logging
import os
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass, field

import httpx

from deploy.e2e.checks import ROUTE, TEXT_HEADERS
from deploy.e2e.stack import Stack
from deploy.e2e.steps import StepFailed

log = logging.getLogger("servegate.e2e.failure")

KEY_FILE = "/var/lib/servegate/torchserve/key_file.json"


@dataclass
class Outage:
    answers: list[tuple[float, int, float]] = field(default_factory=list)  # t, status, seconds
    restarted_after_s: float = 0.0
    first_refusal: str = ""

    def failed(self) -> list[tuple[float, int, float]]:
        return [a for a in self.answers if a[1] != 200]

    def describe(self) -> str:
        failed = self.failed()
        codes = sorted({a[1] for a in failed})
        lat = [a[2] for a in failed] or [0.0]
        return (
            f"{len(self.answers)} requests while down and back: {len(failed)} refused with "
            f"{codes}, refusal latency median {statistics.median(lat) * 1000:.0f} ms, "
            f"max {max(lat) * 1000:.0f} ms; serving again {self.restarted_after_s:.1f} s "
            "after the kill"
        )


def inference_key(stack: Stack) -> str:
    argv = ["docker", "exec", stack.container("gateway"), "cat", KEY_FILE]
    raw = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return str(json.loads(raw)["inference"]["key"])


def kill_torchserve(
    stack: Stack,
    base_url: str,
    admin_url: str,
    max_refusal_s: float = 3.0,
    timeout_s: float = 360,
) -> list[str]:
    key_before = inference_key(stack)
    gateway_started = stack.inspect("gateway", "{{.State.StartedAt}}")
    pid = int(stack.inspect("torchserve", "{{.State.Pid}}"))
    url = f"{base_url}/predictions/{ROUTE}"
    outage = Outage()
    with httpx.Client(timeout=60) as client:
        if client.post(url, content="before", headers=TEXT_HEADERS).status_code != 200:
            raise StepFailed("the stack did not serve before the kill")
        log.info("SIGKILL to TorchServe's container init (host pid %d)", pid)
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        while time.monotonic() - killed < timeout_s:
            sent = time.monotonic()
            resp = client.post(url, content="during", headers=TEXT_HEADERS)
            status = resp.status_code
            outage.answers.append((sent - killed, status, time.monotonic() - sent))
            if status != 200 and not outage.first_refusal:
                outage.first_refusal = f"{status} {resp.text[:200]}"
            if status == 200 and outage.failed():
                outage.restarted_after_s = time.monotonic() - killed
                break
            time.sleep(0.25)
        else:
            raise StepFailed(f"the gateway did not serve again within {timeout_s:.0f} s")
        after = [client.post(url, content="after", headers=TEXT_HEADERS) for _ in range(50)]
    log.info("%s", outage.describe())
    log.info("first refusal: %s", outage.first_refusal)
    timeline = " ".join(f"{t:.1f}s:{code}:{lat * 1000:.0f}ms" for t, code, lat in outage.answers)
    log.info("timeline after the kill (sent at : status : latency): %s", timeline)
    _judge(
        stack,
        outage,
        after=after,
        max_refusal_s=max_refusal_s,
        key_before=key_before,
        gateway_started=gateway_started,
    )
    restarts = stack.inspect("torchserve", "{{.RestartCount}}")
    return [
        outage.describe(),
        f"first refusal: {outage.first_refusal}",
        f"TorchServe restarted by Docker {restarts} time(s); the gateway was not restarted",
        f"new TorchServe keys picked up: {key_counters(admin_url)}",
    ]


def key_counters(admin_url: str) -> str:
    """The gateway's own count of refused keys and re-reads (its /metrics)."""
    text = httpx.get(f"{admin_url}/metrics", timeout=10).text
    wanted = ("servegate_backend_auth_rejections_total", "servegate_backend_key_renewals_total")
    found = [line for line in text.splitlines() if line.startswith(wanted)]
    return "; ".join(found) or "no key rejection was counted (re-read before any refusal)"


def _judge(
    stack: Stack,
    outage: Outage,
    *,
    after: list[httpx.Response],
    max_refusal_s: float,
    key_before: str,
    gateway_started: str,
) -> None:
    failed = outage.failed()
    if not failed:
        raise StepFailed("no request was refused: TorchServe did not go down")
    if {a[1] for a in failed} != {503}:
        raise StepFailed(f"refusals other than 503: {sorted({a[1] for a in failed})}")
    slowest = max(a[2] for a in failed)
    if slowest > max_refusal_s:
        raise StepFailed(f"a refusal took {slowest:.1f} s (limit {max_refusal_s} s): a hang")
    if any(r.status_code != 200 for r in after):
        raise StepFailed(f"after the restart: {sorted({r.status_code for r in after})}")
    if inference_key(stack) == key_before:
        raise StepFailed("TorchServe's restart did not mint new keys; nothing was re-read")
    if stack.inspect("gateway", "{{.State.StartedAt}}") != gateway_started:
        raise StepFailed("the gateway was restarted; it must recover on its own")
