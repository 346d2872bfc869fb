"""TorchServe instance settings, rendered into its ``config.properties``.

Hardening beyond TorchServe's defaults: every port on loopback, token authorization on,
and Prometheus-format metrics. TorchServe's model store is not the user's store but
``staged_store``: the pinned archives copied and checked by ``servegate.pins`` into the
instance's working directory, and ``allowed_urls`` is limited to it. The model register/delete
API is on (``model_api``) only together with token authorization: ``servegate rollout`` loads a
new version through it, and only from ``staged_store`` (``servegate.torchserve.registry``;
docs/serving.md, "Registering a new version").

In a container ``host`` is ``0.0.0.0`` (inference, metrics and gRPC inference must be reachable
from the gateway's container or pod; the compose network or the NetworkPolicy fences them), while
``management_host`` keeps the management APIs (HTTP and gRPC) on the container's own loopback:
nothing outside it ever needs them. ``token_auth=False`` is for Kubernetes only, where each
TorchServe pod would mint its own random keys that no gateway pod can read (see deploy/).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from servegate.pins import pin_file_for
from servegate.ports import free_ports


class Ports(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    inference: int = Field(default=8080, ge=1, le=65535)
    management: int = Field(default=8081, ge=1, le=65535)
    metrics: int = Field(default=8082, ge=1, le=65535)
    grpc_inference: int = Field(default=7070, ge=1, le=65535)
    grpc_management: int = Field(default=7071, ge=1, le=65535)
    # Workers talk to the frontend over unix sockets named after these ports (in TMPDIR).
    initial_worker: int = Field(default=9000, ge=1, le=65535)

    @classmethod
    def ephemeral(cls) -> Ports:
        """Every port picked free by the OS: for tests and benchmarks beside other servers."""
        return cls(**dict(zip(cls.model_fields, free_ports(len(cls.model_fields)), strict=True)))


class TorchServeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    store: Path
    workdir: Path
    pins: Path | None = Field(default=None, description="pin file; None: beside the store")
    models: tuple[str, ...] = Field(default=(), description="archive names; empty: every .mar")
    host: str = "127.0.0.1"
    management_host: str = "127.0.0.1"
    ports: Ports = Ports()
    token_auth: bool = True
    # The register/delete API, for live registration of new versions; never without tokens.
    model_api: bool = True
    token_expiration_min: int = Field(default=60, ge=1)
    ready_timeout_s: float = Field(default=300.0, gt=0)
    max_request_size: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Requests queued per model before TorchServe answers 503: its own default. Raise it when
    # more requests are in flight per model than its workers take at once (benchmarks).
    job_queue_size: int = Field(default=100, ge=1)
    # Given to the workers as SERVEGATE_CANCEL_DIR: where the gateway leaves a marker when a
    # streaming client leaves (the gateway's cancel_dir, the same directory). None: off.
    cancel_dir: Path | None = None

    @property
    def model_api_on(self) -> bool:
        return self.model_api and self.token_auth

    @property
    def config_file(self) -> Path:
        return self.workdir / "config.properties"

    @property
    def key_file(self) -> Path:
        return self.workdir / "key_file.json"

    @property
    def pin_file(self) -> Path:
        return self.pins if self.pins is not None else pin_file_for(self.store)

    @property
    def staged_store(self) -> Path:
        """Where the checked copies of the archives are; TorchServe's model store."""
        return self.workdir / "store"

    @property
    def tmpdir(self) -> Path:
        return self.workdir / "tmp"

    @property
    def logdir(self) -> Path:
        return self.workdir / "logs"

    def url(self, api: str) -> str:
        port = {
            "inference": self.ports.inference,
            "management": self.ports.management,
            "metrics": self.ports.metrics,
        }[api]
        host = self.management_host if api == "management" else self.host
        return f"http://{host}:{port}"

    def archives(self) -> list[str]:
        if self.models:
            return list(self.models)
        return sorted(p.stem for p in self.store.glob("*.mar"))

    def properties(self) -> str:
        store = self.staged_store.resolve()
        lines = {
            "inference_address": self.url("inference"),
            "management_address": self.url("management"),
            "metrics_address": self.url("metrics"),
            "grpc_inference_address": self.host,
            "grpc_management_address": self.management_host,
            "grpc_inference_port": self.ports.grpc_inference,
            "grpc_management_port": self.ports.grpc_management,
            "initial_worker_port": self.ports.initial_worker,
            "model_store": store,
            "load_models": ",".join(f"{m}.mar" for m in self.archives()),
            "metrics_mode": "prometheus",
            "disable_token_authorization": "false" if self.token_auth else "true",
            "enable_model_api": "true" if self.model_api_on else "false",
            "token_expiration_min": self.token_expiration_min,
            "allowed_urls": f"file://{re.escape(str(store))}/.*",
            "max_request_size": self.max_request_size,
            "max_response_size": self.max_request_size,
            "job_queue_size": self.job_queue_size,
            "install_py_dep_per_model": "false",
            "enable_envvars_config": "false",
            "default_response_timeout": 120,
        }
        return "".join(f"{k}={v}\n" for k, v in lines.items())
