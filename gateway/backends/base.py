"""The backend interface: what the data plane needs from a model server, and nothing more.

TorchServe is the first implementation (``torchserve.py``). A backend turns transport failures
into ``UpstreamError`` subclasses; any HTTP answer it gets (including the model's own 4xx/5xx) is
returned as a ``BackendResponse`` for the protocol layer to pass through or translate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from gateway.config import Variant


@dataclass(frozen=True)
class BackendResponse:
    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Payload:
    """A request body as the client sent it, forwarded unchanged. ``inputs``: the same request
    as TorchServe's gRPC ``input`` map, when the client spoke TorchServe's gRPC API (a backend
    with a gRPC upstream sends that instead of ``body``)."""

    body: bytes
    content_type: str | None
    inputs: Mapping[str, bytes] | None = None


@dataclass(frozen=True)
class StreamReply:
    """An upstream answer being received: its status and content type, and its body as the
    pieces arrive (``chunks``; TorchServe sends one chunk per intermediate response)."""

    status: int
    content_type: str
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelSignature:
    """The public OIP v2 signature of one variant (inputs/outputs as clients send/receive)."""

    task: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


class Backend(ABC):
    name: str

    @abstractmethod
    async def predict(
        self,
        variant: Variant,
        payload: Payload,
        timeout_s: float,
        request_id: str | None = None,
    ) -> BackendResponse:
        """Run one inference; raises ``UpstreamError`` when no answer came back in time.
        ``request_id`` (the gateway's own, as for ``stream``) is sent where the transport
        carries it, so that a generation worker can be told that the client left."""

    def stream(
        self, variant: Variant, payload: Payload, timeout_s: float, request_id: str
    ) -> AbstractAsyncContextManager[StreamReply]:
        """Run one inference whose answer may come in pieces, each passed on as it arrives;
        ``timeout_s`` bounds the wait for each piece, and ``request_id`` (the gateway's own,
        a safe file name) is sent upstream so a worker can be told that the client left.
        Leaving the context closes the upstream call. This default answers in one piece."""
        return _whole(self, variant, payload, timeout_s)

    @abstractmethod
    async def ready(self) -> bool:
        """Whether the backend answers health checks now."""

    @abstractmethod
    def signature(self, variant: Variant) -> ModelSignature:
        """The variant's input/output signature; ``UpstreamError`` when it cannot be read."""

    async def serves(self, variant: Variant) -> bool | None:
        """Whether this backend serves the variant's model and version now; None when it
        cannot tell (unreachable, or a kind of backend that cannot be asked)."""
        return None

    @abstractmethod
    async def scrape(self) -> str | None:
        """The backend's Prometheus text, or None when it exposes none."""


@asynccontextmanager
async def _whole(
    backend: Backend, variant: Variant, payload: Payload, timeout_s: float
) -> AsyncIterator[StreamReply]:
    response = await backend.predict(variant, payload, timeout_s)

    async def one() -> AsyncIterator[bytes]:
        yield response.body

    yield StreamReply(response.status, response.content_type, one())
