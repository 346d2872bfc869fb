"""The OIP v2 binary tensor data extension over REST (Triton's ``binary_data``), parsing and
rendering only.

A request with an ``Inference-Header-Content-Length: N`` header is N bytes of JSON (the usual
infer body, where an input may give ``parameters.binary_data_size`` instead of ``data``)
followed by those inputs' raw buffers, back to back in input order (``gateway.tensor_bytes``).
The workers speak JSON, so the buffers are decoded into ``data`` before the body is forwarded.
An answer carries an output as raw bytes when the request asks for it (``binary_data: true``
on the output, or ``parameters.binary_data_output: true`` for every output the request does
not name otherwise); then it is the JSON header, whose binary outputs give
``binary_data_size`` and no ``data``, followed by their buffers, with the header's length in
``Inference-Header-Content-Length``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from gateway.errors import BadRequest
from gateway.tensor_bytes import flat, from_raw, to_raw

HEADER = "inference-header-content-length"
SIZE = "binary_data_size"
# Parameters of the extension itself: consumed here, never forwarded to a worker.
REQUEST_PARAMS = ("binary_data_output",)
OUTPUT_PARAMS = ("binary_data",)


@dataclass(frozen=True)
class BinaryAnswer:
    body: bytes
    header_length: int


def split(body: bytes, header_length: str | None) -> tuple[bytes, bytes | None]:
    """The JSON header and the binary part of a body (``None`` without the extension)."""
    if header_length is None:
        return body, None
    try:
        size = int(header_length.strip())
    except ValueError:
        raise BadRequest("Inference-Header-Content-Length must be a number of bytes") from None
    if not 0 < size <= len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length is {size}, the body has {len(body)} bytes"
        )
    return body[:size], body[size:]


def inline_inputs(obj: dict[str, Any], binary: bytes) -> None:
    """Give every input that names ``binary_data_size`` its ``data``, decoded from ``binary``
    in input order; the whole binary part must be used, no more, no less."""
    inputs = obj.get("inputs")
    if not isinstance(inputs, list):
        return  # the shape check that follows names the fault
    offset = 0
    for i, tensor in enumerate(inputs):
        params = tensor.get("parameters") if isinstance(tensor, dict) else None
        if isinstance(params, dict) and SIZE in params:
            offset = _inline(i, tensor, params, binary, offset)
    if offset != len(binary):
        raise BadRequest(
            f"{len(binary) - offset} bytes of binary data are not claimed by any input's "
            f"parameters.{SIZE}"
        )


def _inline(
    i: int, tensor: dict[str, Any], params: dict[str, Any], binary: bytes, offset: int
) -> int:
    """Decode input ``i`` from ``binary`` at ``offset``; the offset after it."""
    size = params[SIZE]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadRequest(f"inputs[{i}].parameters.{SIZE} must be a whole number of bytes")
    if "data" in tensor:
        raise BadRequest(f"inputs[{i}] has both data and parameters.{SIZE}")
    if offset + size > len(binary):
        raise BadRequest(
            f"inputs[{i}] needs {size} bytes at offset {offset} of the binary data, "
            f"which has {len(binary)}"
        )
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise BadRequest(f"inputs[{i}].name and .datatype must be strings")
    data = from_raw(name, datatype, binary[offset : offset + size])
    if not isinstance(shape, list) or not _is_shape(shape) or len(data) != math.prod(shape):
        raise BadRequest(
            f"input {name!r}: shape {shape} does not match its {len(data)} binary values"
        )
    tensor["data"] = data
    kept = {k: v for k, v in params.items() if k != SIZE}
    if kept:
        tensor["parameters"] = kept
    else:
        del tensor["parameters"]
    return offset + size


def wanted(obj: dict[str, Any]) -> tuple[bool, dict[str, bool]]:
    """What the request asks: binary for every output by default, and per named output."""
    params = obj.get("parameters")
    default = isinstance(params, dict) and params.get("binary_data_output") is True
    named: dict[str, bool] = {}
    outputs = obj.get("outputs")
    for out in outputs if isinstance(outputs, list) else []:
        if isinstance(out, dict) and isinstance(out.get("name"), str):
            out_params = out.get("parameters")
            if isinstance(out_params, dict) and isinstance(out_params.get("binary_data"), bool):
                named[out["name"]] = out_params["binary_data"]
    return default, named


def strip_params(obj: dict[str, Any]) -> None:
    """Drop the extension's own parameters from a body before a worker sees it."""
    _drop(obj, REQUEST_PARAMS)
    outputs = obj.get("outputs")
    for out in outputs if isinstance(outputs, list) else []:
        if isinstance(out, dict):
            _drop(out, OUTPUT_PARAMS)


def render(answer: dict[str, Any], default: bool, named: dict[str, bool]) -> BinaryAnswer | None:
    """The answer with the outputs asked for as raw bytes; ``None`` when none is."""
    buffers: list[bytes] = []
    for out in answer.get("outputs", []):
        if not named.get(out.get("name"), default):
            continue
        raw = to_raw(str(out["datatype"]), flat(out["data"]))
        del out["data"]
        out["parameters"] = {**(out.get("parameters") or {}), SIZE: len(raw)}
        buffers.append(raw)
    if not buffers:
        return None
    header = json.dumps(answer, separators=(",", ":")).encode()
    return BinaryAnswer(header + b"".join(buffers), len(header))


def _drop(target: dict[str, Any], keys: tuple[str, ...]) -> None:
    params = target.get("parameters")
    if isinstance(params, dict):
        kept = {k: v for k, v in params.items() if k not in keys}
        if kept:
            target["parameters"] = kept
        else:
            del target["parameters"]


def _is_shape(shape: list[Any]) -> bool:
    return all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
