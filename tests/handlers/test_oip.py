"""OIP v2 request parsing: shapes, datatypes and nesting are checked before any model runs."""

from __future__ import annotations

import pytest

from handlers import oip
from handlers.errors import BadRequest


def tensor(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "x",
        "shape": [2, 2],
        "datatype": "FP32",
        "data": [1, 2, 3, 4],
    }
    return {**base, **overrides}


def test_nested_data_is_flattened_row_major() -> None:
    request = oip.parse({"inputs": [tensor(data=[[1, 2], [3, 4]])]})
    assert request.inputs[0].data == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": [tensor(data=[1, 2, 3])]}, "needs 4 values, got 3"),
        ({"inputs": [tensor(datatype="FLOAT")]}, "unknown datatype 'FLOAT'"),
        ({"inputs": [tensor(shape=[-1, 4])]}, "negative dimension"),
        ({"inputs": [{"name": "x", "shape": [1], "data": [1]}]}, "inputs.0.datatype"),
        ({"inputs": []}, "inputs"),
    ],
)
def test_malformed_requests_name_the_problem(body: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("[", r"\[")):
        oip.parse(body)


def test_detection_tells_oip_from_native_bodies() -> None:
    assert oip.is_oip({"inputs": [tensor()]})
    assert not oip.is_oip({"inputs": [[1.0, 2.0]]})
    assert not oip.is_oip({"inputs": ["some text"]})
    assert not oip.is_oip(b"raw bytes")
