"""OIP v2 infer bodies of one row per input: what they must share to join, how they join along
dim 0, and how the joined answer splits back along dim 0 (``gateway.joining``).

Bodies join when their input names, datatypes and trailing shapes, ``parameters`` and requested
``outputs`` are the same, every input has ``shape[0] == 1`` and no tensor parameters (binary
data, or anything else), and the ``id`` is a string or absent (as the worker requires). The
joined body carries no ``id``; each item gets its own back. Each output of the answer must have
as many rows as items, with flat ``data`` as the worker writes it;
``parameters.truncated_inputs`` (texts cut to the model's window) is renumbered per item.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Sequence
from typing import Any

OIP_FIELDS = frozenset({"id", "parameters", "inputs", "outputs"})
TENSOR_FIELDS = frozenset({"name", "datatype", "shape", "data", "parameters"})
ANSWER_FIELDS = frozenset({"model_name", "model_version", "outputs", "parameters"})
OUTPUT_FIELDS = frozenset({"name", "datatype", "shape", "data"})
TRUNCATED_INPUTS = "truncated_inputs"  # indices of the texts cut to the model's window


def key(obj: dict[str, Any]) -> Hashable | None:
    """What OIP bodies must share to join; None when this one cannot join."""
    if not set(obj) <= OIP_FIELDS or not isinstance(obj.get("id", ""), str):
        return None
    params, outputs = obj.get("parameters"), obj.get("outputs")
    if params is not None and not isinstance(params, dict):
        return None
    if outputs is not None and not (
        isinstance(outputs, list) and all(isinstance(o, dict) for o in outputs)
    ):
        return None
    tensors = []
    for tensor in obj["inputs"]:
        spec = _one_row(tensor)
        if spec is None:
            return None
        tensors.append(spec)
    return (tuple(tensors), _canonical(params), _canonical(outputs))


def _one_row(tensor: dict[str, Any]) -> tuple[str, str, tuple[int, ...]] | None:
    """(name, datatype, trailing shape) of an input tensor of one row, else None."""
    name, datatype, shape, data = (tensor.get(k) for k in ("name", "datatype", "shape", "data"))
    if not set(tensor) <= TENSOR_FIELDS or tensor.get("parameters"):
        return None  # tensor parameters (binary data, anything else): never joined
    if not (isinstance(name, str) and isinstance(datatype, str) and isinstance(data, list)):
        return None
    if not isinstance(shape, list) or not shape or shape[0] != 1:
        return None
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        return None
    if len(_flat(data)) != math.prod(shape):
        return None
    return name, datatype, tuple(shape[1:])


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def join(bodies: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One body whose every input holds the rows of all ``bodies`` (of one ``key``), in order."""
    first = bodies[0]
    inputs = []
    for position, tensor in enumerate(first["inputs"]):
        data = [x for body in bodies for x in _flat(body["inputs"][position]["data"])]
        shape = [len(bodies), *tensor["shape"][1:]]
        inputs.append(
            {"name": tensor["name"], "datatype": tensor["datatype"], "shape": shape, "data": data}
        )
    joined: dict[str, Any] = {"inputs": inputs}
    for field in ("parameters", "outputs"):
        if field in first:
            joined[field] = first[field]
    return joined


def split(answer: Any, ids: list[Any]) -> list[Any] | None:
    """Each body's own answer (its ``id`` given back) from the joined body's, else None."""
    n = len(ids)
    if not isinstance(answer, dict) or not set(answer) <= ANSWER_FIELDS:
        return None
    outputs = answer.get("outputs")
    params = answer.get("parameters")
    cut: Any = []
    if params is not None:
        if not isinstance(params, dict) or set(params) - {TRUNCATED_INPUTS}:
            return None
        cut = params.get(TRUNCATED_INPUTS, [])
    if not isinstance(outputs, list) or not indices(cut, n):
        return None
    rows = [_output_rows(output, n) for output in outputs]
    if any(r is None for r in rows):
        return None
    parts = []
    for i, own_id in enumerate(ids):
        part = {k: v for k, v in answer.items() if k not in ("outputs", "parameters")}
        part["outputs"] = [r[i] for r in rows if r is not None]
        if own_id is not None:
            part["id"] = own_id
        if i in cut:
            part["parameters"] = {TRUNCATED_INPUTS: [0]}
        parts.append(part)
    return parts


def _output_rows(output: Any, n: int) -> list[dict[str, Any]] | None:
    """An output tensor of ``n`` rows as ``n`` tensors of one row each, or None."""
    if not isinstance(output, dict) or not set(output) <= OUTPUT_FIELDS:
        return None
    shape, data = output.get("shape"), output.get("data")
    if not isinstance(shape, list) or not shape or shape[0] != n or not isinstance(data, list):
        return None
    if not all(isinstance(d, int) and d >= 0 for d in shape) or len(data) != math.prod(shape):
        return None
    size = math.prod(shape[1:])
    return [
        {**output, "shape": [1, *shape[1:]], "data": data[i * size : (i + 1) * size]}
        for i in range(n)
    ]


def _flat(data: list[Any]) -> list[Any]:
    """Row-major values of nested lists, exactly as the worker flattens tensor data
    (``handlers.oip.flatten``, which the gateway does not import): a count that differs from
    the worker's would join a body the worker refuses alone."""
    out: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            out.append(value)
        else:
            stack.pop()
    return out


def indices(value: Any, n: int) -> bool:
    """Whether ``value`` is a list of item indices below ``n``."""
    return isinstance(value, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in value
    )
