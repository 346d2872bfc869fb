"""gRPC for the gateway: TorchServe's ``InferenceAPIsService`` (``torchserve.py``), the Open
Inference Protocol v2 ``inference.GRPCInferenceService`` (``oip.py``), ``grpc.health.v1`` and
server reflection, on one ``grpc.aio`` listener (``server.py``, default 127.0.0.1:9000) that
starts and stops with the HTTP listeners. Stubs are generated at install time (``codegen.py``,
``make protos``) from the ``.proto`` files inside TorchServe's jar.

Forwarding goes through the same ``Backend.predict`` HTTP call as REST, not to TorchServe's
gRPC port (7070). Why:

- one path, one set of protections: the inference key (re-read and retried when TorchServe
  rotates it, a rejection answered UNAVAILABLE and counted), timeouts, error kinds and metrics
  are the backend's, shared with REST; the backend interface stays protocol-neutral, so another
  model server can replace TorchServe without a second client;
- OIP: TorchServe's own OIP gRPC service is ``org.pytorch.serve.grpc.openinference.*`` (not the
  spec's ``inference.*``) and hands workers a protobuf-JSON form our handlers do not read; the
  OIP JSON body that ``/v2/.../infer`` forwards is what they do read (``tensors.py``);
- no channel to TorchServe's gRPC ports exists at all, so none of its management RPCs can be
  reached through the gateway, whatever a client sends.

Routing is ``dataplane.infer`` -> ``routing.choose``, with the facts read from call metadata
(``common.py``: the route's sticky header or cookie, its pin header, the version from the
request). The chosen variant and the request id come back as initial metadata
(``x-servegate-variant``, ``x-request-id``); metrics are the REST series with
``protocol="grpc"``. The client's remaining deadline bounds the upstream timeout, and a
cancelled call cancels the upstream request (counted with code 499).
"""
