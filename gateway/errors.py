"""Every failure the gateway turns into an HTTP answer. Each class carries its status; the
protocol layers render it in their own error shape (TorchServe JSON for ``/predictions``,
``{"error": ...}`` for OIP v2, ``{"error": ...}`` for the admin API).

GatewayError                     500, base of everything below
├── ConfigError                  a config file or admin change that fails validation (400)
├── ClientError                  the client's request is at fault
│   ├── BadRequest               malformed body or header (400)
│   ├── ModelNotFound            unknown route, version or pinned variant (404)
│   ├── RequestTimeout           the body did not arrive in time (408)
│   ├── PayloadTooLarge          body over the configured limit (413)
│   └── UnsupportedMediaType     a Content-Type the protocol does not take (415)
├── UpstreamError                the backend failed; ``kind`` labels the metric
│   ├── BackendUnavailable       connection refused / reset, or no usable answer (503)
│   ├── BackendAuthRejected      TorchServe refused the gateway's own key (503)
│   ├── VariantNotServed         the backend does not serve the variant's model/version (503)
│   └── BackendTimeout           slower than the route's timeout (504)
└── AdminError                   admin API refusals
    ├── Unauthorized             missing or wrong bearer token (401)
    ├── PreconditionRequired     write without ``If-Match`` (428)
    ├── VersionConflict          ``If-Match`` names a stale config version (412)
    ├── ConfigReadOnly           the config file cannot be written here (409)
    ├── ConfigFileRejected       the file on disk holds an edit the gateway rejected (409)
    ├── AnalysisRunning          a canary analysis owns the weights or refuses the action (409)
    └── Draining                 this process is shutting down and writes nothing more (503)
"""

from __future__ import annotations


class GatewayError(Exception):
    status: int = 500
    kind: str = "InternalServerError"

    def __init__(self, message: str = "internal error") -> None:
        super().__init__(message)
        self.message = message
        self.variant: str | None = None  # set once a variant was chosen (for the response header)


class ConfigError(GatewayError):
    status = 400
    kind = "InvalidConfig"


class ClientError(GatewayError):
    status = 400
    kind = "BadRequest"


class BadRequest(ClientError):
    pass


class ModelNotFound(ClientError):
    status = 404
    kind = "ModelNotFoundException"


class RequestTimeout(ClientError):
    status = 408
    kind = "RequestTimeout"


class PayloadTooLarge(ClientError):
    status = 413
    kind = "RequestTooLarge"


class UnsupportedMediaType(ClientError):
    status = 415
    kind = "UnsupportedMediaType"


class UpstreamError(GatewayError):
    status = 503
    kind = "ServiceUnavailableException"
    metric_kind: str = "unavailable"
    # True when no byte of the request reached the upstream (connect failed): safe to retry.
    before_sent: bool = False


class BackendUnavailable(UpstreamError):
    pass


class BackendAuthRejected(UpstreamError):
    metric_kind = "auth_rejected"


class VariantNotServed(UpstreamError):
    """The backend answered, but does not serve the model/version the variant names (a typo in
    the config, an archive not loaded): the variant's fault, never the client's."""

    metric_kind = "model_missing"


class BackendTimeout(UpstreamError):
    status = 504
    kind = "GatewayTimeout"
    metric_kind = "timeout"


class AdminError(GatewayError):
    pass


class Unauthorized(AdminError):
    status = 401
    kind = "Unauthorized"


class PreconditionRequired(AdminError):
    status = 428
    kind = "PreconditionRequired"


class VersionConflict(AdminError):
    status = 412
    kind = "PreconditionFailed"


class ConfigReadOnly(AdminError):
    """E.g. a Kubernetes ConfigMap or a read-only compose mount: change the config at its source."""

    status = 409
    kind = "ConfigReadOnly"


class ConfigFileRejected(AdminError):
    """The config file on disk is not what serves: it holds an edit the gateway rejected."""

    status = 409
    kind = "Conflict"


class AnalysisRunning(AdminError):
    """A canary analysis owns the route's weights, or its phase does not allow the action."""

    status = 409
    kind = "Conflict"


class Draining(AdminError):
    """The process is draining (stopped, or replaced by a successor that owns the config now):
    a change sent again on a new connection reaches the gateway that serves."""

    status = 503
    kind = "ServiceUnavailable"
