"""Read ``gateway.yaml`` once into the frozen models of ``schema.py``.

Any failure (unreadable file, YAML syntax, a field out of range) is a ``ConfigError`` that names
the field and the fix. ``load_config`` returns the models together with the file's version (a
digest of its bytes), which the admin API uses as the ``If-Match`` token.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config.schema import GatewayConfig
from gateway.errors import ConfigError


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config, the file it came from and its version (digest of the bytes)."""

    config: GatewayConfig
    version: str
    path: Path | None = None


def version_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def parse_config(raw: bytes, source: str = "gateway.yaml") -> GatewayConfig:
    """Parse and validate; any failure is a ``ConfigError`` that names the field and the fix."""
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_one_line(str(exc))}") from None
    return validate_config(data, source)


def validate_config(data: Any, source: str = "gateway.yaml") -> GatewayConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with `backends` and `routes`")
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{source}: invalid config: {problems}") from None


def load_config(path: Path) -> LoadedConfig:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    return LoadedConfig(parse_config(raw, str(path)).anchored(path), version_of(raw), path)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
