"""Warm-up requests for a newly registered version: a few inferences sent to TorchServe itself
(inference key, the versioned URL) before any client traffic can reach it. Each must be answered
200; the bodies come from the archive's manifest, so a version is warmed on what it declares."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import httpx

from handlers.manifest import Manifest
from servegate.torchserve.identity import ServedAs

TEXT_TASKS = ("text_embedding", "text_classification")


class WarmUpFailed(Exception):
    """A warm-up request was not answered 200."""


def body_for(manifest: Manifest) -> dict[str, object]:
    """One request of the archive's task, as a client would send it."""
    if manifest.task in TEXT_TASKS:
        return {"inputs": ["servegate warm-up: a short sentence."]}
    if manifest.task == "image_classification":
        return {"inputs": [base64.b64encode(_png(8, 8)).decode()]}
    shape = manifest.inputs[0].shape
    return {"inputs": [_zeros([1 if d < 0 else d for d in shape[1:]])]}


def warm_up(
    inference_url: str, key: str, served: ServedAs, manifest: Manifest, requests: int = 3
) -> float:
    """Send ``requests`` warm-up requests; the slowest one's seconds. ``WarmUpFailed``
    names the first answer that was not 200."""
    slowest = 0.0
    body = json.dumps(body_for(manifest))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(timeout=120) as client:
        for i in range(requests):
            try:
                resp = client.post(
                    f"{inference_url}/predictions/{served.path}", content=body, headers=headers
                )
            except httpx.HTTPError as exc:
                raise WarmUpFailed(f"warm-up request {i + 1}: {type(exc).__name__}") from None
            if resp.status_code != 200:
                raise WarmUpFailed(
                    f"warm-up request {i + 1} to {served.path} answered HTTP "
                    f"{resp.status_code}: {resp.text[:300]}"
                )
            slowest = max(slowest, resp.elapsed.total_seconds())
    return slowest


def _zeros(shape: list[int]) -> object:
    if not shape:
        return 0.0
    return [_zeros(shape[1:]) for _ in range(shape[0])]


def _png(width: int, height: int) -> bytes:
    """A grey RGB PNG, written by hand (no imaging library in the CLI)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * (3 * width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
