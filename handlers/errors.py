"""Errors raised inside a worker.

HandlerError                    base; ``status`` is the HTTP status the client gets
├── BadRequest                  one request of a batch is malformed (400); the others still run
└── ArtifactError               the archive cannot be served (load time, never per request)
    └── IntegrityError          an artifact's SHA-256 differs from the manifest
"""

from __future__ import annotations


class HandlerError(Exception):
    status: int = 500
    kind: str = "InternalServerError"


class BadRequest(HandlerError):
    status = 400
    kind = "BadRequest"


class ArtifactError(HandlerError):
    status = 503
    kind = "ArtifactError"


class IntegrityError(ArtifactError):
    kind = "IntegrityError"
