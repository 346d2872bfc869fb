"""Triton's gRPC client (``tritonclient.grpc``) run as a client process of its own: its
generated modules define the package ``inference`` in protobuf's default pool, as the gateway's
own stubs do, so the two cannot share a process (any real client is a process of its own).

    python -m tests.support.triton_grpc_client HOST:PORT MODEL INPUT SHAPE_JSON ROWS_JSON

prints one JSON object: the first output as a list, how many raw output buffers the answer
had, and the error message when the call failed.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException


def main(argv: list[str]) -> int:
    address, model, name, shape, rows = argv
    client = triton_grpc.InferenceServerClient(address)
    result: dict[str, object] = {}
    try:
        tensor = triton_grpc.InferInput(name, json.loads(shape), "FP32")
        tensor.set_data_from_numpy(np.asarray(json.loads(rows), dtype=np.float32))  # raw
        answer = client.infer(model, [tensor], headers={"x-servegate-variant": "stable"})
        response = answer.get_response()
        first = response.outputs[0].name
        result["output"] = answer.as_numpy(first).tolist()
        result["raw_outputs"] = len(response.raw_output_contents)
    except InferenceServerException as exc:
        result["error"] = f"{exc.status()} {exc.message()}"
    finally:
        client.close()
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
