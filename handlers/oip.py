"""Open Inference Protocol v2 request parsing and response building (JSON/REST form).

Workers accept an OIP v2 body as well as each task's native body, so the gateway can forward
OIP requests unchanged. Tensor ``data`` may be flat or nested (row-major); it is flattened
and checked against ``shape``.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handlers.errors import BadRequest

NUMERIC_DATATYPES = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BF16",
}
DATATYPES = NUMERIC_DATATYPES | {"BYTES"}


class OipTensor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class OipRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[OipTensor] = Field(min_length=1)
    outputs: list[dict[str, Any]] | None = None


def is_oip(body: object) -> bool:
    """An OIP body's ``inputs`` are tensor objects; native bodies carry plain values."""
    if not isinstance(body, dict):
        return False
    inputs = body.get("inputs")
    return isinstance(inputs, list) and bool(inputs) and all(isinstance(i, dict) for i in inputs)


def parse(body: dict[str, Any]) -> OipRequest:
    try:
        request = OipRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadRequest(f"invalid inference request at {where}: {first['msg']}") from None
    return request.model_copy(update={"inputs": [_checked(t) for t in request.inputs]})


def _checked(tensor: OipTensor) -> OipTensor:
    if tensor.datatype not in DATATYPES:
        raise BadRequest(f"input {tensor.name!r}: unknown datatype {tensor.datatype!r}")
    if any(d < 0 for d in tensor.shape):
        raise BadRequest(f"input {tensor.name!r}: shape {tensor.shape} has a negative dimension")
    flat = flatten(tensor.data)
    expected = math.prod(tensor.shape)
    if len(flat) != expected:
        raise BadRequest(
            f"input {tensor.name!r}: shape {tensor.shape} needs {expected} values, got {len(flat)}"
        )
    return tensor.model_copy(update={"data": flat})


def flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def tensor_out(name: str, datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def response(
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: list[dict[str, Any]],
) -> dict[str, Any]:
    body: dict[str, Any] = {"model_name": model_name, "outputs": outputs}
    if model_version:
        body["model_version"] = model_version
    if request_id is not None:
        body["id"] = request_id
    return body
