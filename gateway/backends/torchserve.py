"""TorchServe as a backend: versioned ``/predictions`` calls with the inference key.

Only ``/predictions/<model>/<version>`` and ``/ping`` on the inference address are ever called
for clients; the URL is built from config, never from client input, so no management, token,
metrics, workflow or API-description path can be reached through the gateway. A request from a
client of TorchServe's gRPC API goes to TorchServe's gRPC ``Predictions`` instead when
``grpc_address`` is set (``grpc_upstream.py`` says why), with the same key and renewal.

Key expiry: TorchServe's inference key expires (``token_expiration_min``, 60 by default) and
TorchServe answers it with 400 ``InvalidKeyException`` without writing a new one. When the key
is rejected the backend, once per rejected key whatever the concurrency:

1. re-reads ``key_file.json`` (a restarted TorchServe wrote new keys there);
2. failing that, and with ``management_url`` configured, asks TorchServe for a new inference
   key with the non-expiring API key (``GET <management_url>/token?type=inference``, the one
   management call the gateway makes, on its own behalf only) and re-reads the file;
3. retries the request once with the new key. Every renewal is counted
   (``servegate_backend_key_renewals_total{backend,result}``); with no new key the client gets
   503 and ``servegate_backend_auth_rejections_total`` counts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from gateway.backends.archive import archive_file_name, read_signature
from gateway.backends.base import Backend, BackendResponse, ModelSignature, Payload, StreamReply
from gateway.backends.grpc_upstream import GrpcPool, KeyRejected, ModelNotServed
from gateway.backends.http import HttpPool, HttpReply
from gateway.backends.keys import KeyFileReader
from gateway.config import BackendConfig, Variant
from gateway.errors import (
    BackendAuthRejected,
    BackendUnavailable,
    UpstreamError,
    VariantNotServed,
)

log = logging.getLogger(__name__)
KEY_REJECTED = b"InvalidKeyException"  # TorchServe answers a bad token with 400 + this type
# TorchServe's 404 for a model or version it does not serve (never a handler's answer).
NOT_SERVED = (b'"ModelNotFoundException"', b'"ModelVersionNotFoundException"')
NOT_SERVED_MESSAGE = "the model server does not serve this variant's model"
RENEW_TIMEOUT_S = 10.0
# The gateway's id of a request, for a worker to find its client's cancellation marker.
REQUEST_ID_HEADER = "X-Servegate-Request-Id"
# Called with the backend name and the renewal result: "reread", "renewed" or "failed".
RenewalHook = Callable[[str, str], None]


class TorchServeBackend(Backend):
    def __init__(
        self,
        name: str,
        config: BackendConfig,
        pool: HttpPool,
        on_renewal: RenewalHook | None = None,
        grpc_pool: GrpcPool | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.pool = pool
        self.keys = KeyFileReader(config.key_file)
        self.on_renewal = on_renewal
        self._renewing = asyncio.Lock()
        self._what = f"backend {name}"
        # TorchServe-gRPC clients' requests go to TorchServe's gRPC port when it is configured.
        self.grpc = grpc_pool if config.grpc_address is not None else None

    async def _predict_grpc(
        self, variant: Variant, inputs: Mapping[str, bytes], timeout_s: float
    ) -> BackendResponse:
        assert self.grpc is not None and self.config.grpc_address is not None
        key = self.keys.key()
        for attempt in range(2):
            try:
                return await self.grpc.predict(
                    self.config.grpc_address,
                    variant.model,
                    variant.version,
                    inputs,
                    key=key,
                    timeout_s=timeout_s,
                    what=self._what,
                )
            except ModelNotServed:
                raise VariantNotServed(NOT_SERVED_MESSAGE) from None
            except KeyRejected:
                # Renew once (as for HTTP); no new key, or a second refusal, ends the call.
                key = await self._renew_key(key) if attempt == 0 else None
                if key is None:
                    break
        raise BackendAuthRejected("the model server is unavailable")

    async def predict(
        self,
        variant: Variant,
        payload: Payload,
        timeout_s: float,
        request_id: str | None = None,
    ) -> BackendResponse:
        if payload.inputs is not None and self.grpc is not None:
            return await self._predict_grpc(variant, payload.inputs, timeout_s)
        url = f"{self.config.inference_url}/predictions/{variant.model}/{variant.version}"
        headers = {"Content-Type": payload.content_type or "application/octet-stream"}
        if request_id is not None:
            headers[REQUEST_ID_HEADER] = request_id
        reply = await self._send("POST", url, headers, payload.body, timeout_s)
        if not_served(reply.status, reply.body):
            raise VariantNotServed(NOT_SERVED_MESSAGE)
        return BackendResponse(reply.status, reply.body, reply.content_type or "application/json")

    @asynccontextmanager
    async def stream(
        self, variant: Variant, payload: Payload, timeout_s: float, request_id: str
    ) -> AsyncIterator[StreamReply]:
        # Always over HTTP: TorchServe's chunked answer carries each intermediate response as
        # it comes, and the request id travels as the header the worker reads.
        url = f"{self.config.inference_url}/predictions/{variant.model}/{variant.version}"
        headers = {
            "Content-Type": payload.content_type or "application/octet-stream",
            REQUEST_ID_HEADER: request_id,
        }
        key = self.keys.key()
        for attempt in range(2):
            if key is not None:
                headers["Authorization"] = f"Bearer {key}"
            async with self.pool.stream(
                "POST",
                url,
                headers=headers,
                body=payload.body,
                timeout_s=timeout_s,
                what=self._what,
            ) as reply:
                content_type = reply.content_type or "application/json"
                if reply.status < 400:
                    yield StreamReply(reply.status, content_type, reply.chunks)
                    return
                body = b"".join([chunk async for chunk in reply.chunks])
            if not_served(reply.status, body):
                raise VariantNotServed(NOT_SERVED_MESSAGE)
            if reply.status == 400 and KEY_REJECTED in body[:256]:
                key = await self._renew_key(key) if attempt == 0 else None
                if key is None:
                    raise BackendAuthRejected("the model server is unavailable")
                continue
            yield StreamReply(reply.status, content_type, _one(body))
            return

    async def ready(self) -> bool:
        try:
            reply = await self._send("GET", f"{self.config.inference_url}/ping", {}, b"", 2.0)
        except UpstreamError:
            return False
        return reply.status == 200

    async def serves(self, variant: Variant) -> bool | None:
        # TorchServe's OPTIONS on a prediction URL describes the model (200) or answers its own
        # 404 for a model or version it does not serve, without running any inference. It is an
        # inference-port call, so it works wherever the gateway can predict (management is
        # unreachable in compose and Kubernetes). A rejected key is "cannot tell": renewing keys
        # is the request path's job (counted there), not a background probe's.
        url = f"{self.config.inference_url}/predictions/{variant.model}/{variant.version}"
        try:
            reply = await self._attempt("OPTIONS", url, {}, b"", 5.0, key=self.keys.key())
        except UpstreamError:
            return None
        if reply.status == 200:
            return True
        return False if not_served(reply.status, reply.body) else None

    def signature(self, variant: Variant) -> ModelSignature:
        if self.config.model_store is None:
            raise BackendUnavailable(f"backend {self.name!r} has no model_store for metadata")
        mar = self.config.model_store / archive_file_name(variant.model, variant.version)
        try:
            return read_signature(mar)
        except (OSError, KeyError, ValueError) as exc:
            log.error("cannot read the manifest of %s: %s", mar, exc)
            raise BackendUnavailable("model metadata is unavailable") from None

    async def scrape(self) -> str | None:
        if self.config.metrics_url is None:
            return None
        try:
            reply = await self.pool.send(
                "GET",
                f"{self.config.metrics_url}/metrics",
                headers={},
                timeout_s=5.0,
                what=f"{self._what} metrics",
            )
        except UpstreamError:
            return None
        return reply.body.decode("utf-8", "replace") if reply.status == 200 else None

    async def _send(
        self, method: str, url: str, headers: dict[str, str], body: bytes, timeout_s: float
    ) -> HttpReply:
        key = self.keys.key()
        reply = await self._attempt(method, url, headers, body, timeout_s, key=key)
        if not _key_rejected(reply):
            return reply
        new_key = await self._renew_key(key)
        if new_key is None:
            raise BackendAuthRejected("the model server is unavailable")
        reply = await self._attempt(method, url, headers, body, timeout_s, key=new_key)
        if _key_rejected(reply):
            raise BackendAuthRejected("the model server is unavailable")
        return reply

    async def _attempt(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        timeout_s: float,
        *,
        key: str | None,
    ) -> HttpReply:
        if key is not None:
            headers = {**headers, "Authorization": f"Bearer {key}"}
        return await self.pool.send(
            method, url, headers=headers, body=body, timeout_s=timeout_s, what=self._what
        )

    async def _renew_key(self, rejected: str | None) -> str | None:
        """A key to retry with, different from ``rejected``; None when there is none."""
        async with self._renewing:  # one renewal per rejected key, not one per waiting request
            current = self.keys.key()
            if current is not None and current != rejected:
                return current  # a request ahead of this one already renewed it
            if self.keys.refresh():
                log.info(
                    "TorchServe %s rejected the inference key; the key file has a new one",
                    self.name,
                )
                self._count("reread")
                return self.keys.key()
            if self.config.management_url is None:
                log.error(
                    "TorchServe %s rejected the inference key and no management_url is "
                    "configured to renew it",
                    self.name,
                )
                return None
            renewed = await self._regenerate(rejected)
            self._count("renewed" if renewed else "failed")
            return self.keys.key() if renewed else None

    async def _regenerate(self, rejected: str | None) -> bool:
        """Ask TorchServe for a new inference key (it writes it to the key file)."""
        api_key = self.keys.keys().api
        if api_key is None:
            log.error(
                "TorchServe %s: no API key in %s to renew the inference key",
                self.name,
                self.config.key_file,
            )
            return False
        try:
            reply = await self.pool.send(
                "GET",
                f"{self.config.management_url}/token?type=inference",
                headers={"Authorization": f"Bearer {api_key}"},
                timeout_s=RENEW_TIMEOUT_S,
                what=f"{self._what} management",
            )
        except UpstreamError as exc:
            log.error("TorchServe %s: renewing the inference key failed: %s", self.name, exc)
            return False
        if reply.status != 200:
            log.error(
                "TorchServe %s refused to renew the inference key (HTTP %d)",
                self.name,
                reply.status,
            )
            return False
        self.keys.refresh()
        if self.keys.key() in (None, rejected):
            log.error(
                "TorchServe %s renewed the inference key but %s has no new one",
                self.name,
                self.config.key_file,
            )
            return False
        log.info("TorchServe %s: inference key renewed", self.name)
        return True

    def _count(self, result: str) -> None:
        if self.on_renewal is not None:
            self.on_renewal(self.name, result)


def not_served(status: int, body: bytes) -> bool:
    """TorchServe's own "no such model/version" (404 with its exception type), which says the
    config names something this backend does not serve, as opposed to a handler's 404."""
    return status == 404 and any(kind in body[:256] for kind in NOT_SERVED)


def _key_rejected(reply: HttpReply) -> bool:
    return reply.status == 400 and KEY_REJECTED in reply.body[:256]


async def _one(body: bytes) -> AsyncIterator[bytes]:
    yield body
