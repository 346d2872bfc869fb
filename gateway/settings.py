"""Process settings (listeners, limits, token, intervals), from ``SERVEGATE_GATEWAY_*``
environment variables and explicit overrides. Built by ``load_settings``, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SERVEGATE_GATEWAY_", frozen=True, extra="forbid")

    config: Path = Path("gateway.yaml")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    admin_host: str = "127.0.0.1"
    admin_port: int = Field(default=8001, ge=0, le=65535)
    # gRPC data plane (TorchServe's inference API, OIP v2, health, reflection).
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(default=9000, ge=0, le=65535)
    # The admin API is on only when a token is configured (directly or through a file).
    admin_token: SecretStr | None = None
    admin_token_file: Path | None = None
    audit_log: Path | None = Field(default=None, description="default: <config>.audit.jsonl")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    # JSON bodies (gateway/rest/bodies.py): nesting levels and digits in one number.
    max_json_depth: int = Field(default=32, ge=1, le=512)
    max_json_digits: int = Field(default=100, ge=1, le=4000)
    # Slow and abusive clients (gateway/listener.py): per listener, as an edge proxy has them.
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=30.0, gt=0, description="the whole body, once begun")
    max_header_count: int = Field(default=100, ge=1)
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    max_connections: int = Field(default=1024, ge=1)
    # An idle kept-alive connection is closed after this (uvicorn's timeout_keep_alive); while
    # draining, idle connections close this way too (gateway/drain.py).
    keep_alive_s: float = Field(default=5.0, gt=0)
    reload_interval_s: float = Field(default=0.5, gt=0)
    scrape_interval_s: float = Field(default=5.0, gt=0)
    access_log: bool = False
    # Processes serving the data plane (HTTP and gRPC on shared ports, SO_REUSEPORT). One event
    # loop per process is the gateway's throughput ceiling; see docs/gateway.md "Worker processes".
    workers: int = Field(default=1, ge=1, le=64)
    # Canary analysis runs in exactly one replica; the others only route (see docs/deploy.md).
    canary_analysis: bool = True
    canary_status: Path | None = Field(default=None, description="default: <config>.canary.json")
    # Restarts (docs/gateway.md "Stopping and restarting"): the file naming the serving gateway's
    # pid, and the Unix socket a successor takes the listening sockets over from. Off when unset.
    pid_file: Path | None = None
    control_socket: Path | None = None
    # Where the gateway leaves a marker when a streaming client leaves, for the TorchServe
    # worker to stop generating (docs/generation.md): the workers' SERVEGATE_CANCEL_DIR, the
    # same directory. Off when unset.
    cancel_dir: Path | None = None

    @field_validator("cancel_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(
                f"cancel_dir must be an absolute path (the directory TorchServe's workers get "
                f"as SERVEGATE_CANCEL_DIR), got {str(value)!r}"
            )
        return value

    def token(self) -> str | None:
        if self.admin_token is not None:
            return self.admin_token.get_secret_value() or None
        if self.admin_token_file is not None and self.admin_token_file.is_file():
            return self.admin_token_file.read_text().strip() or None
        return None

    def audit_path(self) -> Path:
        return self.audit_log or self.config.with_name(self.config.name + ".audit.jsonl")

    def canary_status_path(self) -> Path:
        return self.canary_status or self.config.with_name(self.config.name + ".canary.json")


def load_settings(**overrides: Any) -> GatewaySettings:
    return GatewaySettings(**{k: v for k, v in overrides.items() if v is not None})
