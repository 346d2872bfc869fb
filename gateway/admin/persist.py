"""Write a weight change back to ``gateway.yaml`` and replace the file atomically.

The edit is surgical: ruamel.yaml's round-trip parser gives the line and column of each
variant's ``weight`` value and only those scalars are rewritten, so every other byte (comments,
layout, quoting) survives. The result is validated exactly like a hand edit before it is
written (temp file in the same directory, fsync, rename, fsync the directory).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gateway.config import GatewayConfig, parse_config
from gateway.errors import BadRequest, ConfigError, ModelNotFound

_SCALAR = re.compile(r"[^\s,}\]#]+")


def with_weights(raw: bytes, route: str, weights: Mapping[str, int]) -> tuple[bytes, GatewayConfig]:
    """The file's bytes with new weights for ``route``, and the validated config they give."""
    try:
        doc = YAML().load(raw)
        variants = doc["routes"][route]["variants"]
    except YAMLError:
        raise ConfigError("gateway.yaml on disk is not valid YAML; fix it first") from None
    except (KeyError, TypeError):
        raise ModelNotFound(f"route not found: {route}") from None
    names = [v["name"] for v in variants]
    unknown, missing = sorted(set(weights) - set(names)), sorted(set(names) - set(weights))
    if unknown or missing:
        raise BadRequest(
            f"give a weight for each variant of {route} {names}; "
            f"unknown: {unknown}, missing: {missing}"
        )
    bad = {k: w for k, w in weights.items() if type(w) is not int}
    if bad:
        raise BadRequest(f"weights must be integers 0-100, got {bad}")
    lines = raw.decode("utf-8").splitlines(keepends=True)
    spots = sorted(((*v.lc.value("weight"), v["name"]) for v in variants), reverse=True)
    for line, col, name in spots:
        text = lines[line]
        token = _SCALAR.match(text, col)
        if token is None:
            raise ConfigError(f"cannot locate the weight of {route}/{name} in gateway.yaml")
        lines[line] = text[:col] + str(weights[name]) + text[token.end() :]
    new_raw = "".join(lines).encode("utf-8")
    return new_raw, parse_config(new_raw, "the requested change")


def atomic_write(path: Path, data: bytes) -> None:
    directory = path.parent
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
