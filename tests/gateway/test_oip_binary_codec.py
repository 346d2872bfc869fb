"""The REST binary data extension's parsing and rendering (``gateway.rest.binary``), on bodies
built by hand as Triton's client builds them."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest

from gateway.errors import BadRequest
from gateway.rest import binary


def body(header: dict[str, Any], *buffers: bytes) -> tuple[bytes, str]:
    head = json.dumps(header).encode()
    return head + b"".join(buffers), str(len(head))


def fp32_input(name: str, values: np.ndarray) -> tuple[dict[str, Any], bytes]:
    raw = values.astype("<f4").tobytes()
    tensor = {
        "name": name,
        "datatype": "FP32",
        "shape": list(values.shape),
        "parameters": {"binary_data_size": len(raw)},
    }
    return tensor, raw


def parsed(raw_body: bytes, length: str) -> dict[str, Any]:
    head, rest = binary.split(raw_body, length)
    obj: dict[str, Any] = json.loads(head)
    assert rest is not None
    binary.inline_inputs(obj, rest)
    return obj


def test_inputs_are_decoded_in_order_and_mixed_with_json_data() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    b = np.array([1.5, -2.25], dtype=np.float32)
    ta, ra = fp32_input("a", a)
    tb, rb = fp32_input("b", b)
    words = [b"hello", "d\u00e9j\u00e0".encode(), b""]
    text_raw = b"".join(struct.pack("<I", len(w)) + w for w in words)
    text = {"name": "t", "datatype": "BYTES", "shape": [3]}
    text["parameters"] = {"binary_data_size": len(text_raw), "other": 1}
    plain = {"name": "j", "datatype": "INT64", "shape": [2], "data": [4, 5]}
    obj = parsed(*body({"id": "x", "inputs": [ta, plain, tb, text]}, ra, rb, text_raw))
    got = {t["name"]: t for t in obj["inputs"]}
    assert got["a"]["data"] == a.ravel().tolist() and "parameters" not in got["a"]
    assert got["b"]["data"] == b.tolist()
    assert got["j"]["data"] == [4, 5]
    assert got["t"]["data"] == ["hello", "d\u00e9j\u00e0", ""]
    assert got["t"]["parameters"] == {"other": 1}  # only the extension's own key is consumed


@pytest.mark.parametrize(
    ("length", "message"),
    [
        ("abc", "must be a number"),
        ("0", "the body has"),
        ("100000", "the body has"),
        ("-5", "the body has"),
    ],
)
def test_header_length_must_fit_the_body(length: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        binary.split(b'{"inputs": []}xxxx', length)


def test_binary_bytes_must_all_be_claimed() -> None:
    t, raw = fp32_input("a", np.ones(4, dtype=np.float32))
    with pytest.raises(BadRequest, match="3 bytes of binary data are not claimed"):
        parsed(*body({"inputs": [t]}, raw, b"abc"))


def test_an_input_cannot_claim_more_than_there_is() -> None:
    t, raw = fp32_input("a", np.ones(4, dtype=np.float32))
    with pytest.raises(BadRequest, match="needs 16 bytes at offset 0"):
        parsed(*body({"inputs": [t]}, raw[:10]))


def test_shape_must_match_the_values() -> None:
    t, raw = fp32_input("a", np.ones(4, dtype=np.float32))
    t["shape"] = [5]
    with pytest.raises(BadRequest, match="does not match its 4 binary values"):
        parsed(*body({"inputs": [t]}, raw))


@pytest.mark.parametrize("size", [-1, 1.5, "16", True, None])
def test_binary_data_size_must_be_a_byte_count(size: object) -> None:
    t, raw = fp32_input("a", np.ones(4, dtype=np.float32))
    t["parameters"]["binary_data_size"] = size
    with pytest.raises(BadRequest, match="whole number of bytes"):
        parsed(*body({"inputs": [t]}, raw))


def test_data_and_binary_both_is_refused() -> None:
    t, raw = fp32_input("a", np.ones(4, dtype=np.float32))
    t["data"] = [1, 1, 1, 1]
    with pytest.raises(BadRequest, match="both data and"):
        parsed(*body({"inputs": [t]}, raw))


def test_partial_elements_and_bad_text_are_refused() -> None:
    t, raw = fp32_input("a", np.ones(4, dtype=np.float32))
    t["parameters"]["binary_data_size"] = 15
    t["shape"] = [4]
    with pytest.raises(BadRequest, match="not a whole number of elements"):
        parsed(*body({"inputs": [t]}, raw[:15]))
    bad = struct.pack("<I", 2) + b"\xff\xfe"
    text = {"name": "t", "datatype": "BYTES", "shape": [1]}
    text["parameters"] = {"binary_data_size": len(bad)}
    with pytest.raises(BadRequest, match="UTF-8"):
        parsed(*body({"inputs": [text]}, bad))


def test_what_the_request_wants() -> None:
    assert binary.wanted({"inputs": []}) == (False, {})
    assert binary.wanted({"parameters": {"binary_data_output": True}}) == (True, {})
    asked = {"outputs": [{"name": "a", "parameters": {"binary_data": False}}, {"name": "b"}]}
    assert binary.wanted(asked) == (False, {"a": False})


def test_extension_parameters_are_not_forwarded() -> None:
    obj = {
        "inputs": [],
        "parameters": {"binary_data_output": True, "keep": 1},
        "outputs": [{"name": "a", "parameters": {"binary_data": True}}],
    }
    binary.strip_params(obj)
    assert obj == {"inputs": [], "parameters": {"keep": 1}, "outputs": [{"name": "a"}]}


def test_render_puts_raw_outputs_after_the_header() -> None:
    scores = np.array([[0.5, -1.25], [3.0, 4.5]], dtype=np.float32)
    answer = {
        "model_name": "m",
        "outputs": [
            {"name": "scores", "datatype": "FP32", "shape": [2, 2], "data": scores.tolist()},
            {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["cat"]},
        ],
    }
    rendered = binary.render(answer, False, {"scores": True})
    assert rendered is not None
    header = json.loads(rendered.body[: rendered.header_length])
    rest = rendered.body[rendered.header_length :]
    scores_out, label_out = header["outputs"]
    assert "data" not in scores_out and scores_out["parameters"]["binary_data_size"] == 16
    assert np.frombuffer(rest, dtype="<f4").reshape(2, 2).tolist() == scores.tolist()
    assert label_out["data"] == ["cat"]  # not asked for as binary


def test_render_without_binary_outputs_is_plain_json() -> None:
    answer = {"outputs": [{"name": "s", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    assert binary.render(answer, False, {}) is None
    assert binary.render(answer, True, {"s": False}) is None
