"""Backends the gateway forwards to, behind one small interface (``base.Backend``)."""

from gateway.backends.base import (
    Backend,
    BackendResponse,
    ModelSignature,
    Payload,
    StreamReply,
    TensorSpec,
)
from gateway.backends.factory import make_backend
from gateway.backends.grpc_upstream import GrpcPool
from gateway.backends.http import HttpPool

__all__ = [
    "Backend",
    "BackendResponse",
    "GrpcPool",
    "HttpPool",
    "ModelSignature",
    "Payload",
    "StreamReply",
    "TensorSpec",
    "make_backend",
]
