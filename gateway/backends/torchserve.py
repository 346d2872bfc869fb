"""TorchServe as a backend: versioned ``/predictions`` calls with the inference key.

Only ``/predictions/<model>/<version>`` and ``/ping`` on the inference address are ever called
for clients; the URL is built from config, never from client input, so no management, token,
metrics, workflow or API-description path can be reached through the gateway.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from gateway.backends.archive import read_signature
from gateway.backends.base import Backend, BackendResponse, ModelSignature, Payload
from gateway.backends.keys import KeyFileReader
from gateway.config import BackendConfig, Variant
from gateway.errors import BackendAuthRejected, BackendTimeout, BackendUnavailable

log = logging.getLogger(__name__)
KEY_REJECTED = b"InvalidKeyException"  # TorchServe answers a bad token with 400 + this type


class TorchServeBackend(Backend):
    def __init__(self, name: str, config: BackendConfig, client: httpx.AsyncClient) -> None:
        self.name = name
        self.config = config
        self.client = client
        self.keys = KeyFileReader(config.key_file)

    async def predict(
        self, variant: Variant, payload: Payload, timeout_s: float
    ) -> BackendResponse:
        url = f"{self.config.inference_url}/predictions/{variant.model}/{variant.version}"
        headers = {"Content-Type": payload.content_type or "application/octet-stream"}
        resp = await self._send("POST", url, headers, payload.body, timeout_s)
        return BackendResponse(
            resp.status_code, resp.content, resp.headers.get("content-type", "application/json")
        )

    async def ready(self) -> bool:
        try:
            resp = await self._send("GET", f"{self.config.inference_url}/ping", {}, b"", 2.0)
        except (BackendUnavailable, BackendTimeout, BackendAuthRejected):
            return False
        return resp.status_code == 200

    def signature(self, variant: Variant) -> ModelSignature:
        if self.config.model_store is None:
            raise BackendUnavailable(f"backend {self.name!r} has no model_store for metadata")
        mar = self.config.model_store / f"{variant.model}.mar"
        try:
            return read_signature(mar)
        except (OSError, KeyError, ValueError) as exc:
            log.error("cannot read the manifest of %s: %s", mar, exc)
            raise BackendUnavailable("model metadata is unavailable") from None

    async def scrape(self) -> str | None:
        if self.config.metrics_url is None:
            return None
        try:
            resp = await self.client.get(f"{self.config.metrics_url}/metrics", timeout=5.0)
        except httpx.HTTPError as exc:
            log.warning("scraping %s failed: %s", self.name, exc)
            return None
        return resp.text if resp.status_code == 200 else None

    async def _send(
        self, method: str, url: str, headers: dict[str, str], body: bytes, timeout_s: float
    ) -> httpx.Response:
        resp = await self._attempt(method, url, headers, body, timeout_s)
        if _key_rejected(resp):
            # Keys expire and a restarted TorchServe writes new ones: re-read once and retry.
            if not self.keys.refresh():
                raise BackendAuthRejected("the model server is unavailable")
            log.info(
                "TorchServe %s rejected the inference key; retrying with the new one", self.name
            )
            resp = await self._attempt(method, url, headers, body, timeout_s)
            if _key_rejected(resp):
                raise BackendAuthRejected("the model server is unavailable")
        return resp

    async def _attempt(
        self, method: str, url: str, headers: dict[str, str], body: bytes, timeout_s: float
    ) -> httpx.Response:
        key = self.keys.key()
        if key is not None:
            headers = {**headers, "Authorization": f"Bearer {key}"}
        try:
            async with asyncio.timeout(timeout_s):
                return await self.client.request(
                    method, url, headers=headers, content=body, timeout=timeout_s
                )
        except (TimeoutError, httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
            raise BackendTimeout("the model server did not answer in time") from None
        except httpx.HTTPError as exc:
            log.warning("backend %s unreachable: %s", self.name, type(exc).__name__)
            raise BackendUnavailable("the model server is unavailable") from None


def _key_rejected(resp: httpx.Response) -> bool:
    return resp.status_code == 400 and KEY_REJECTED in resp.content[:256]
