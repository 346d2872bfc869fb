"""Build a backend from its config; backends share the gateway's pooled HTTP client."""

from __future__ import annotations

import httpx

from gateway.backends.base import Backend
from gateway.backends.torchserve import TorchServeBackend
from gateway.config import BackendConfig


def make_backend(name: str, config: BackendConfig, client: httpx.AsyncClient) -> Backend:
    # One kind today; the Literal in BackendConfig.kind is where the next one is added.
    return TorchServeBackend(name, config, client)
