"""``gateway.raw_json``: a split answer's numbers are the worker's own text, copied, and
everything else renders as compact ``json`` would."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway import raw_json


@pytest.mark.parametrize(
    "value",
    [
        {"embeddings": [[0.25, -1e-07, 3.0], [1.5, 2.5, -0.0]], "truncated": [1]},
        [[{"label": "0.5", "probability": 0.5}], []],
        {"outputs": [{"name": "y", "shape": [1, 2], "data": [1, 2]}], "é": None, "ok": True},
        {"nan": float("nan"), "inf": float("inf"), "big": 10**30},
        "text",
        [],
    ],
)
def test_what_it_reads_renders_as_compact_json(value: Any) -> None:
    compact = json.dumps(value, separators=(",", ":")).encode()
    assert raw_json.dumps(raw_json.loads(compact)) == compact


def test_numbers_keep_the_digits_they_were_written_with() -> None:
    body = b'{"rows":[[1.10,2.50E+3],[0.1000000000000000055511151231257827]],"n":[7]}'
    parsed = raw_json.loads(body)
    assert parsed["n"] == [7] and parsed["rows"][1] == [b"0.1000000000000000055511151231257827"]
    assert raw_json.dumps({"rows": [parsed["rows"][0]]}) == b'{"rows":[[1.10,2.50E+3]]}'
