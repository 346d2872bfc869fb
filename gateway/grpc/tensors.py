"""OIP v2 tensors between their gRPC form (``ModelInferRequest``/``ModelInferResponse``) and
the JSON form the workers speak (the same body ``/v2/models/{m}/infer`` forwards).

Input data may come typed (``contents.<type>_contents``) or raw (``raw_input_contents``, one
little-endian, row-major buffer per input; BYTES elements each prefixed by a 4-byte
little-endian length, as Triton and KServe write them). BYTES elements must be UTF-8 text,
since the JSON form carries strings. FP16 and BF16 are raw only (no typed field exists).
Answers use the form the request used: raw in, raw out (KServe's rule), else typed contents.
"""

from __future__ import annotations

import math
from typing import Any

from gateway.errors import BadRequest
from gateway.grpc.stubs import grpc_predict_v2_pb2 as pb
from gateway.tensor_bytes import RAW_ONLY, flat, from_raw, texts, to_raw, utf8

CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def request_json(req: pb.ModelInferRequest) -> dict[str, Any]:
    """The JSON body of an OIP infer request; ``BadRequest`` when it is not a valid one."""
    raw = req.raw_input_contents
    if not req.inputs:
        raise BadRequest("an inference request needs at least one input tensor")
    if raw and len(raw) != len(req.inputs):
        raise BadRequest(f"raw_input_contents has {len(raw)} entries for {len(req.inputs)} inputs")
    inputs = [_input_json(t, raw[i] if raw else None) for i, t in enumerate(req.inputs)]
    body: dict[str, Any] = {"inputs": inputs}
    if req.id:
        body["id"] = req.id
    if req.parameters:
        body["parameters"] = params_json(req.parameters)
    if req.outputs:
        body["outputs"] = [{"name": o.name} for o in req.outputs]
    return body


def _input_json(tensor: Any, buffer: bytes | None) -> dict[str, Any]:
    if buffer is not None and tensor.HasField("contents"):
        raise BadRequest(f"input {tensor.name!r}: contents and raw_input_contents both set")
    shape = list(tensor.shape)
    if any(d < 0 for d in shape):
        raise BadRequest(f"input {tensor.name!r}: shape {shape} has a negative dimension")
    data = (
        _from_contents(tensor) if buffer is None else from_raw(tensor.name, tensor.datatype, buffer)
    )
    if len(data) != math.prod(shape):
        raise BadRequest(
            f"input {tensor.name!r}: shape {shape} needs {math.prod(shape)} values, got {len(data)}"
        )
    entry = {"name": tensor.name, "datatype": tensor.datatype, "shape": shape, "data": data}
    if tensor.parameters:
        entry["parameters"] = params_json(tensor.parameters)
    return entry


def _from_contents(tensor: Any) -> list[Any]:
    if tensor.datatype in RAW_ONLY:
        raise BadRequest(f"input {tensor.name!r}: {tensor.datatype} must be sent raw")
    field = CONTENTS.get(tensor.datatype)
    if field is None:
        raise BadRequest(f"input {tensor.name!r}: unknown datatype {tensor.datatype!r}")
    values = getattr(tensor.contents, field)
    return texts(tensor.name, values) if tensor.datatype == "BYTES" else list(values)


def params_json(params: Any) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        if which is not None:
            out[key] = getattr(value, which)
    return out


def set_params(target: Any, params: Any) -> None:
    if not isinstance(params, dict):
        return
    for key, value in params.items():
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int):
            target[key].int64_param = value
        elif value is not None:
            target[key].string_param = str(value)


def infer_response(body: dict[str, Any], *, raw: bool) -> pb.ModelInferResponse:
    """The gRPC answer for a worker's JSON answer (``model_name``/``id`` set by the caller)."""
    outputs = body.get("outputs")
    if not isinstance(outputs, list):
        raise ValueError("the answer has no outputs")
    resp = pb.ModelInferResponse()
    raw = raw or any(o.get("datatype") in RAW_ONLY for o in outputs)
    for out in outputs:
        datatype = str(out["datatype"])
        tensor = resp.outputs.add(name=str(out["name"]), datatype=datatype, shape=out["shape"])
        set_params(tensor.parameters, out.get("parameters"))
        data = flat(out["data"])
        if raw:
            resp.raw_output_contents.append(to_raw(datatype, data))
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(utf8(v) for v in data)
        else:
            getattr(tensor.contents, CONTENTS[datatype]).extend(data)
    set_params(resp.parameters, body.get("parameters"))
    return resp
