"""Edit ``gateway.yaml``'s bytes for a weight change or a promotion.

The edit is surgical: ruamel.yaml's round-trip parser gives the line and column of each
variant's ``weight`` (for a promotion also ``backend``, ``model``, ``version``) and only those
scalars are rewritten, so every other byte (comments, layout, quoting) survives. Each edit returns
the new bytes with the config they give, validated exactly like a hand edit; ``changes.py``
writes them (``atomic.atomic_write``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gateway.config.load import parse_config
from gateway.config.schema import GatewayConfig
from gateway.errors import BadRequest, ConfigError, ModelNotFound

_SCALAR = re.compile(r"[^\s,}\]#]+")
_COMMENT = re.compile(r"\s+#.*$")


def with_weights(raw: bytes, route: str, weights: Mapping[str, int]) -> tuple[bytes, GatewayConfig]:
    """The file's bytes with new weights for ``route``, and the validated config they give."""
    names = [v["name"] for v in _variants(raw, route)]
    unknown, missing = sorted(set(weights) - set(names)), sorted(set(names) - set(weights))
    if unknown or missing:
        raise BadRequest(
            f"give a weight for each variant of {route} {names}; "
            f"unknown: {unknown}, missing: {missing}"
        )
    bad = {k: w for k, w in weights.items() if type(w) is not int}
    if bad:
        raise BadRequest(f"weights must be integers 0-100, got {bad}")
    return with_fields(raw, route, {name: {"weight": w} for name, w in weights.items()})


def with_promotion(
    raw: bytes, route: str, current: GatewayConfig, canary: str, when: str = ""
) -> tuple[bytes, GatewayConfig]:
    """Promote ``canary``: the route's stable (first) variant takes the canary's backend, model
    and version at the weight stable and canary held together; the canary drops to 0.

    The file must read true afterwards: the end-of-line comments on stable's lines described
    the model it ran and are replaced by one saying where its model came from, and a shadow
    copying traffic to the canary (now the same model as stable) is removed, with a comment
    saying so (the next canary needs it back for a divergence check)."""
    spec = current.routes[route]
    stable, promoted = spec.stable, spec.variant(canary)
    if promoted is None:
        raise ModelNotFound(f"variant not found: {route}/{canary}")
    fields: dict[str, dict[str, str | int]] = {
        stable.name: {
            "backend": promoted.backend,
            "model": promoted.model,
            "version": promoted.version,
            "weight": stable.weight + promoted.weight,
        },
        canary: {"weight": 0},
    }
    edited, _ = with_fields(raw, route, fields)
    lines = edited.decode("utf-8").splitlines(keepends=True)
    doc = _load(edited)
    first, after = _variant_lines(doc, route, stable.name)
    note = f"promoted from {canary} ({promoted.model}/{promoted.version}){when and ' ' + when}"
    for i in range(first, after):
        lines[i] = _without_comment(lines[i])
    lines[first] = lines[first].rstrip("\n") + f"  # {note}\n"
    shadow = spec.shadow
    if shadow is not None and shadow.variant == canary:
        start, end = _key_lines(doc["routes"][route], "shadow", lines)
        indent = " " * doc["routes"][route].lc.key("shadow")[1]
        lines[start:end] = [
            f"{indent}# shadow to {canary} removed at its promotion (same model as "
            f"{stable.name} now); add one for the next canary\n"
        ]
    new_raw = "".join(lines).encode("utf-8")
    return new_raw, parse_config(new_raw, "the requested change")


def _load(raw: bytes) -> Any:
    try:
        return YAML().load(raw)
    except YAMLError:
        raise ConfigError("gateway.yaml on disk is not valid YAML; fix it first") from None


def _variant_lines(doc: Any, route: str, name: str) -> tuple[int, int]:
    """The line range of variant ``name`` of ``route``: from its first key to the next
    variant's first key, or to its own last key."""
    variants = doc["routes"][route]["variants"]
    index = next(i for i, v in enumerate(variants) if v["name"] == name)
    first = min(variants[index].lc.key(k)[0] for k in variants[index])
    if index + 1 < len(variants):
        nxt = variants[index + 1]
        return first, min(nxt.lc.key(k)[0] for k in nxt)
    return first, max(variants[index].lc.value(k)[0] for k in variants[index]) + 1


def _key_lines(mapping: Any, key: str, lines: list[str]) -> tuple[int, int]:
    """The lines of ``key`` in a block mapping: its own line and every following line indented
    deeper (its value, comments inside it)."""
    start, col = mapping.lc.key(key)
    end = start + 1
    while end < len(lines):
        text = lines[end]
        if text.strip() and len(text) - len(text.lstrip(" ")) <= col:
            break
        end += 1
    return start, end


def _without_comment(line: str) -> str:
    """The line without its end-of-line comment (names, models and versions hold no ``#``)."""
    body = line.rstrip("\n")
    stripped = _COMMENT.sub("", body)
    if not stripped.strip():  # a comment line of its own: not the variant's value, keep it
        return line
    return stripped + ("\n" if line.endswith("\n") else "")


def with_fields(
    raw: bytes, route: str, changes: Mapping[str, Mapping[str, str | int]]
) -> tuple[bytes, GatewayConfig]:
    """Rewrite only the named scalars of the named variants of ``route``; a field the file
    does not spell out yet (e.g. a defaulted ``version``) is added on the line after ``name``."""
    variants = _variants(raw, route)
    lines = raw.decode("utf-8").splitlines(keepends=True)
    edits: list[tuple[int, int, str | None, str]] = []  # line, col, key to insert or None, text
    for v in variants:
        for key, value in changes.get(v["name"], {}).items():
            text = str(value) if isinstance(value, int) else json.dumps(value)
            if key in v:
                edits.append((*v.lc.value(key), None, text))
            else:
                line, col = v.lc.key("name")
                edits.append((line + 1, col, key, text))
    for line, col, new_key, text in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        if new_key is not None:
            lines.insert(line, " " * col + f"{new_key}: {text}\n")
            continue
        token = _SCALAR.match(lines[line], col)
        if token is None:
            raise ConfigError(f"cannot locate a value to rewrite in {route} in gateway.yaml")
        lines[line] = lines[line][:col] + text + lines[line][token.end() :]
    new_raw = "".join(lines).encode("utf-8")
    return new_raw, parse_config(new_raw, "the requested change")


def _variants(raw: bytes, route: str) -> Any:
    try:
        doc = YAML().load(raw)
        variants = doc["routes"][route]["variants"]
    except YAMLError:
        raise ConfigError("gateway.yaml on disk is not valid YAML; fix it first") from None
    except (KeyError, TypeError):
        raise ModelNotFound(f"route not found: {route}") from None
    if not all(hasattr(v, "lc") and "name" in v for v in variants):
        raise ConfigError(f"routes.{route}.variants in gateway.yaml must be mappings with a name")
    if any(v.fa.flow_style() for v in variants):
        raise ConfigError(f"routes.{route}.variants: write each variant in block style to edit it")
    return variants
