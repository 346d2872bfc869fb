"""The split statistics hold over gRPC as over HTTP: 90/10 over 10,000 calls, sticky keys from
metadata (and cookies) keep their variant. The same routing function decides both."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.gateway.grpc.support import fire
from tests.gateway.support import run_gateway, split_route, write_config

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_ten_thousand_calls_split_90_10(fake_config_path: Path) -> None:
    with run_gateway(fake_config_path) as gw:
        results = fire(gw.grpc_address, 10_000, concurrency=64)
    assert Counter(code for code, _ in results) == {grpc.StatusCode.OK: 10_000}
    share = Counter(v for _, v in results)["canary"] / 10_000
    assert 0.08 <= share <= 0.12, share


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sticky", "metadata_for"),
    [
        ({"header": "X-User"}, lambda key: (("x-user", key),)),
        ({"cookie": "sid"}, lambda key: (("cookie", f"theme=dark; sid={key}"),)),
    ],
)
def test_sticky_keys_keep_their_variant(
    tmp_path: Path, fake_backends: dict[str, Any], sticky: dict[str, str], metadata_for: Any
) -> None:
    route = split_route(50, 50, sticky=sticky)
    config = write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": route})
    keys = [f"user-{i}" for i in range(20)]
    with run_gateway(config) as gw:
        results = fire(gw.grpc_address, 2000, lambda i: metadata_for(keys[i % 20]))
    seen: dict[str, set[str | None]] = {}
    for i, (code, variant) in enumerate(results):
        assert code == grpc.StatusCode.OK
        seen.setdefault(keys[i % 20], set()).add(variant)
    assert all(len(variants) == 1 for variants in seen.values()), seen
    assert {v for s in seen.values() for v in s} == {"stable", "canary"}
