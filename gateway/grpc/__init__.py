"""gRPC for the gateway: TorchServe's ``InferenceAPIsService`` (``torchserve.py``), the Open
Inference Protocol v2 ``inference.GRPCInferenceService`` (``oip.py``), ``grpc.health.v1`` and
server reflection, on one ``grpc.aio`` listener (``server.py``, default 127.0.0.1:9000) that
starts and stops with the HTTP listeners. Stubs are generated at install time (``codegen.py``,
``make protos``) from the ``.proto`` files inside TorchServe's jar.

Forwarding. TorchServe's ``Predictions`` goes to TorchServe's own gRPC inference port when the
backend sets ``grpc_address`` (``backends/grpc_upstream.py``), else through the same
``Backend.predict`` HTTP call as REST; OIP ``ModelInfer`` always takes the HTTP call. Why:

- ``Predictions`` over gRPC: on the H200 TorchServe answered the same load at 6,010 calls/s on
  its gRPC port and 5,190 requests/s on its HTTP API, so the HTTP upstream capped the gateway at
  86% of TorchServe's gRPC. The inference key, its renewal, timeouts, error kinds and metrics are
  the backend's, as for HTTP; TorchServe 0.12 returns a worker's error as an OK call carrying its
  JSON error, which is turned back into that status (INVALID_ARGUMENT for our handlers' 400);
- OIP over HTTP: TorchServe's own OIP gRPC service is ``org.pytorch.serve.grpc.openinference.*``
  (not the spec's ``inference.*``) and hands workers a protobuf-JSON form our handlers do not
  read; the OIP JSON body that ``/v2/.../infer`` forwards is what they do read (``tensors.py``);
- only ``InferenceAPIsService/Predictions`` is ever called on TorchServe's gRPC inference port,
  so none of its management RPCs (another service, on another port) can be reached through the
  gateway, whatever a client sends.

Routing is the data plane's (``gateway.dataplane``, as for REST), with the facts read from call
metadata (``common.py``: the route's sticky header or cookie, its pin header, the version from
the request). Errors become status codes in one place (``status.py``). The chosen variant and
the request id come back as initial metadata (``x-servegate-variant``, ``x-request-id``);
metrics are the REST series with ``protocol="grpc"``. The client's remaining deadline bounds
the upstream timeout, and a cancelled call cancels the upstream request (counted with code 499).
"""
