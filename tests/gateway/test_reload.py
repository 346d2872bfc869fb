"""Hot reload: valid edits apply without failing in-flight requests; invalid ones are rejected,
counted, and the last good split keeps serving."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.gateway.support import MLP_ROW, fire, run_gateway, split_route, wait_for, write_config

pytestmark = pytest.mark.integration


def test_valid_change_applies_without_failing_requests(
    tmp_path: Path, backends: dict[str, Any]
) -> None:
    config = write_config(tmp_path / "gateway.yaml", backends, {"mlp": split_route(100, 0)})
    statuses: list[int] = []
    variants: list[str | None] = []
    stop = threading.Event()
    with run_gateway(config) as gw:

        def hammer() -> None:
            with httpx.Client(base_url=gw.url, timeout=60) as c:
                while not stop.is_set():
                    r = c.post("/predictions/mlp", json={"inputs": [MLP_ROW]})
                    statuses.append(r.status_code)
                    variants.append(r.headers.get("x-servegate-variant"))

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for w in workers:
            w.start()
        try:
            wait_for(lambda: len(statuses) > 50, "traffic before the change")
            write_config(config, backends, {"mlp": split_route(0, 100)})
            wait_for(lambda: variants[-8:] == ["canary"] * 8, "traffic on the new table")
        finally:
            stop.set()
            for w in workers:
                w.join()
        assert gw.metric("servegate_config_reloads_total", result="applied") == 1
        assert gw.metric("servegate_route_weight", route="mlp", variant="canary") == 100
    assert set(statuses) == {200}
    assert variants[0] == "stable"


def _good(backends: dict[str, Any]) -> str:
    return yaml.safe_dump({"backends": backends, "routes": {"mlp": split_route(100, 0)}})


INVALID = {
    "sum-90": lambda good: good.replace("weight: 100", "weight: 90"),
    "sum-110": lambda good: good.replace("weight: 0", "weight: 10"),
    "negative": lambda good: good.replace("weight: 100", "weight: 110").replace(
        "weight: 0", "weight: -10"
    ),
    "fractional": lambda good: good.replace("weight: 100", "weight: 89.5").replace(
        "weight: 0", "weight: 10.5"
    ),
    "unknown-backend": lambda good: good.replace("backend: ts", "backend: elsewhere"),
    "yaml-syntax": lambda good: good.replace("routes:", "routes: [", 1),
    "truncated": lambda good: good[: good.index("- backend") + 12],
}


def _replace(path: Path, text: str) -> None:
    """Swap the file's content in one step: the watcher must never poll a half-written file
    (an empty read would be one more rejection, and the count below would run ahead)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_each_invalid_file_is_rejected_and_the_old_split_keeps_serving(
    tmp_path: Path, backends: dict[str, Any]
) -> None:
    good = _good(backends)
    config = tmp_path / "gateway.yaml"
    config.write_text(good)
    with run_gateway(config) as gw:
        version = gw.server.loaded.version
        rejected = {"result": "rejected"}
        for n, (name, corrupt) in enumerate(INVALID.items(), start=1):
            bad = corrupt(good)
            assert bad != good, name
            _replace(config, bad)
            wait_for(
                lambda n=n: gw.metric("servegate_config_reloads_total", **rejected) == n,
                f"the {name} file to be rejected",
            )
            results = fire(f"{gw.url}/predictions/mlp", 30)
            assert Counter(results) == {(200, "stable"): 30}, name
            assert gw.metric("servegate_config_version_info", version=version) == 1, name
        assert gw.metric("servegate_config_reloads_total", result="applied") == 0
