"""Config validation: every bad file is refused with a message that points at the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import load_config, parse_config
from gateway.errors import ConfigError
from gateway.server import GatewayServer
from gateway.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
GOOD: dict[str, Any] = {
    "backends": {"ts": {"inference_url": "http://127.0.0.1:8080"}},
    "routes": {
        "m": {
            "variants": [
                {"name": "stable", "backend": "ts", "model": "m_a", "weight": 90},
                {"name": "canary", "backend": "ts", "model": "m_b", "weight": 10},
            ]
        }
    },
}


def mutated(path: str, value: Any) -> bytes:
    doc = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return yaml.safe_dump(doc).encode()


DELETE = object()
GOOD_RAW = yaml.safe_dump(GOOD).encode()


def test_example_config_is_valid() -> None:
    loaded = load_config(ROOT / "gateway.example.yaml")
    assert {"minilm", "mlp"} <= set(loaded.config.routes)
    assert loaded.config.routes["mlp"].coalesce is not None
    assert parse_config(GOOD_RAW).routes["m"].variants[1].weight == 10


@pytest.mark.parametrize(
    ("raw", "points_at"),
    [
        (mutated("routes.m.variants.1.weight", 0), "sum to 90"),
        (mutated("routes.m.variants.1.weight", 20), "sum to 110"),
        (mutated("routes.m.variants.1.weight", -10), "routes.m.variants.1.weight"),
        (mutated("routes.m.variants.1.weight", 10.5), "routes.m.variants.1.weight"),
        (mutated("routes.m.variants.1.weight", "10"), "routes.m.variants.1.weight"),
        (mutated("routes.m.variants.1.backend", "nope"), "backend 'nope'"),
        (mutated("routes.m.variants.1.name", "stable"), "unique"),
        (mutated("routes.m.variants.0.colour", "red"), "routes.m.variants.0.colour"),
        (mutated("routes.m.variants.0.weight", DELETE), "routes.m.variants.0.weight"),
        (mutated("routes.m.shadow", {"variant": "ghost", "percent": 5}), "shadow variant"),
        (mutated("routes.m.sticky", {"header": "X-A", "cookie": "b"}), "exactly one"),
        (mutated("routes.m.coalesce", {"max_items": 1}), "routes.m.coalesce.max_items"),
        (mutated("routes.m.coalesce", {"max_items": 100_000}), "less than or equal to 1024"),
        (mutated("routes.m.coalesce", {"max_items": "32"}), "routes.m.coalesce.max_items"),
        (mutated("routes.m.coalesce", {"max_wait_ms": -1}), "routes.m.coalesce.max_wait_ms"),
        (mutated("routes.m.coalesce", {"max_wait": 2}), "routes.m.coalesce.max_wait"),
        (
            mutated(
                "routes.m",
                {**GOOD["routes"]["m"], "timeout_s": 0.5, "coalesce": {"max_wait_ms": 500}},
            ),
            "must be shorter than the route's timeout_s",
        ),
        (b"backends: {ts: {inference_url: [}\n", "not valid YAML"),
        (GOOD_RAW[: len(GOOD_RAW) - 20], "routes.m"),
        (b"", "expected a mapping"),
    ],
    ids=[
        "sum90",
        "sum110",
        "negative",
        "fractional",
        "string",
        "unknown-backend",
        "dupe-name",
        "unknown-field",
        "missing-weight",
        "shadow-variant",
        "sticky-both",
        "coalesce-one-item",
        "coalesce-huge",
        "coalesce-string",
        "coalesce-negative-wait",
        "coalesce-unknown-field",
        "coalesce-wait-past-timeout",
        "yaml-syntax",
        "truncated",
        "empty",
    ],
)
def test_invalid_configs_are_refused(raw: bytes, points_at: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert points_at in str(info.value)


def test_coalesce_is_off_unless_asked_and_has_defaults() -> None:
    assert parse_config(GOOD_RAW).routes["m"].coalesce is None
    coalesce = parse_config(mutated("routes.m.coalesce", {})).routes["m"].coalesce
    assert coalesce is not None and (coalesce.max_items, coalesce.max_wait_ms) == (32, 2.0)


def test_all_zero_weights_are_refused() -> None:
    raw = mutated(
        "routes.m.variants",
        [
            {"name": "a", "backend": "ts", "model": "x", "weight": 0},
        ],
    )
    with pytest.raises(ConfigError, match="sum to 0"):
        parse_config(raw)


def test_gateway_refuses_to_start_on_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_bytes(mutated("routes.m.variants.1.weight", 20))
    with pytest.raises(ConfigError, match=r"routes\.m.*sum to 110"):
        GatewayServer(load_settings(config=path))


def test_relative_paths_are_anchored_at_the_config_files_folder(tmp_path: Path) -> None:
    config = copy.deepcopy(GOOD)
    next(iter(config["backends"].values()))["key_file"] = "ts/key_file.json"
    raw = yaml.safe_dump(config).encode()
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "gateway.yaml").write_bytes(raw)
    (elsewhere := tmp_path / "elsewhere").mkdir()
    backend = next(iter(load_config(folder / "gateway.yaml").config.backends.values()))
    assert backend.key_file == folder.resolve() / "ts" / "key_file.json"
    absolute = backend.anchored(elsewhere)
    assert absolute.key_file == backend.key_file  # an absolute path is left as it is
