"""Build a backend from its config; backends share the gateway's pooled HTTP client and
gRPC channels."""

from __future__ import annotations

from gateway.backends.base import Backend
from gateway.backends.grpc_upstream import GrpcPool
from gateway.backends.http import HttpPool
from gateway.backends.torchserve import RenewalHook, TorchServeBackend
from gateway.config import BackendConfig


def make_backend(
    name: str,
    config: BackendConfig,
    pool: HttpPool,
    on_renewal: RenewalHook | None = None,
    grpc_pool: GrpcPool | None = None,
) -> Backend:
    # One kind today; the Literal in BackendConfig.kind is where the next one is added.
    return TorchServeBackend(name, config, pool, on_renewal, grpc_pool)
