"""OIP tensors between gRPC and JSON, on their own (no server)."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.errors import BadRequest
from gateway.grpc.stubs import grpc_predict_v2_pb2 as pb
from gateway.grpc.tensors import infer_response, request_json
from gateway.tensor_bytes import join_bytes, split_bytes

Tensor = pb.ModelInferRequest.InferInputTensor


def test_typed_contents_with_parameters_and_outputs() -> None:
    t = Tensor(name="x", datatype="INT64", shape=[2, 2])
    t.contents.int64_contents.extend([1, 2, 3, 4])
    wanted = pb.ModelInferRequest.InferRequestedOutputTensor(name="y")
    req = pb.ModelInferRequest(model_name="m", id="a", inputs=[t], outputs=[wanted])
    req.parameters["flag"].bool_param = True
    req.parameters["n"].int64_param = 3
    assert request_json(req) == {
        "id": "a",
        "parameters": {"flag": True, "n": 3},
        "outputs": [{"name": "y"}],
        "inputs": [{"name": "x", "datatype": "INT64", "shape": [2, 2], "data": [1, 2, 3, 4]}],
    }


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("FP32", [0.5, -2.0]),
        ("FP16", [1.5, 2.0]),
        ("INT8", [-3, 4]),
        ("UINT64", [2**63, 1]),
        ("BOOL", [True, False]),
        ("FP64", [1e-300, 3.0]),
        ("BF16", [1.0, -0.5]),
    ],
)
def test_raw_contents_round_trip(datatype: str, values: list[object]) -> None:
    dtype = {"BF16": "<f4", "BOOL": "?"}.get(datatype)
    if datatype == "BF16":
        raw = (np.asarray(values, "<f4").view("<u4") >> 16).astype("<u2").tobytes()
    else:
        names = {"FP32": "<f4", "FP16": "<f2", "INT8": "<i1", "UINT64": "<u8", "FP64": "<f8"}
        raw = np.asarray(values, dtype or names[datatype]).tobytes()
    req = pb.ModelInferRequest(inputs=[Tensor(name="x", datatype=datatype, shape=[2])])
    req.raw_input_contents.append(raw)
    data = request_json(req)["inputs"][0]["data"]
    assert data == values
    out = {"outputs": [{"name": "y", "datatype": datatype, "shape": [2], "data": data}]}
    assert infer_response(out, raw=True).raw_output_contents[0] == raw


def test_bytes_elements_and_typed_answers() -> None:
    items = [b"a", b"", "ünï".encode()]
    assert split_bytes("t", join_bytes(items)) == items
    y = {"name": "y", "datatype": "BYTES", "shape": [1], "data": ["hi"]}
    z = {"name": "z", "datatype": "FP32", "shape": [1, 2], "data": [[1.0, 2.0]]}
    out = {"outputs": [y, z]}
    answer = infer_response(out, raw=False)
    assert list(answer.outputs[0].contents.bytes_contents) == [b"hi"]
    assert list(answer.outputs[1].contents.fp32_contents) == [1.0, 2.0]
    assert not answer.raw_output_contents
    half = {"outputs": [{**y, "datatype": "FP16", "data": [1.0]}]}
    assert infer_response(half, raw=False).raw_output_contents  # FP16 has no typed field


@pytest.mark.parametrize(
    "case",
    ["truncated_bytes", "odd_raw", "raw_count", "shape", "unknown_type", "fp16_typed", "negative"],
)
def test_malformed_requests(case: str) -> None:
    t = Tensor(name="x", datatype="FP32", shape=[2])
    req = pb.ModelInferRequest(inputs=[t])
    if case == "truncated_bytes":
        req.inputs[0].datatype = "BYTES"
        req.raw_input_contents.append(b"\x05\0\0\0ab")
    elif case == "odd_raw":
        req.raw_input_contents.append(b"\0" * 7)
    elif case == "raw_count":
        req.raw_input_contents.extend([b"\0" * 8, b"\0" * 8])
    elif case == "shape":
        req.inputs[0].contents.fp32_contents.extend([1.0, 2.0, 3.0])
    elif case == "unknown_type":
        req.inputs[0].datatype = "COMPLEX"
    elif case == "fp16_typed":
        req.inputs[0].datatype = "FP16"
    else:
        req.inputs[0].shape[:] = [-1]
    with pytest.raises(BadRequest):
        request_json(req)
