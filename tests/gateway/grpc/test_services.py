"""The standard gRPC health service and server reflection answer on the gateway's port."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.gateway.grpc.support import channel
from tests.gateway.support import run_gateway

pytestmark = pytest.mark.integration
TORCHSERVE = "org.pytorch.serve.grpc.inference.InferenceAPIsService"
OIP = "inference.GRPCInferenceService"
SERVING = health_pb2.HealthCheckResponse.SERVING


def test_health(fake_config_path: Path) -> None:
    with run_gateway(fake_config_path) as gw, channel(gw.grpc_address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", TORCHSERVE, OIP):
            assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == SERVING


def test_reflection_lists_and_describes_the_services(fake_config_path: Path) -> None:
    with run_gateway(fake_config_path) as gw, channel(gw.grpc_address) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        asks = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=OIP),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=TORCHSERVE),
        ]
        listed, oip_file, ts_file = list(stub.ServerReflectionInfo(iter(asks)))
    names = {s.name for s in listed.list_services_response.service}
    assert {TORCHSERVE, OIP, "grpc.health.v1.Health"} <= names
    assert not any("management" in n for n in names)
    files = {}
    for answer in (oip_file, ts_file):
        for raw in answer.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[proto.package] = proto
    oip = files["inference"]
    assert [m.name for m in oip.service[0].method] == [
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    ]
    ts = files["org.pytorch.serve.grpc.inference"]
    assert [m.name for m in ts.service[0].method] == [
        "Ping",
        "Predictions",
        "StreamPredictions",
        "StreamPredictions2",
    ]
