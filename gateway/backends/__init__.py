"""Backends the gateway forwards to, behind one small interface (``base.Backend``)."""

from gateway.backends.base import Backend, BackendResponse, ModelSignature, Payload, TensorSpec
from gateway.backends.factory import make_backend

__all__ = ["Backend", "BackendResponse", "ModelSignature", "Payload", "TensorSpec", "make_backend"]
