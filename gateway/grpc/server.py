"""The gateway's gRPC listener: TorchServe's inference API, OIP v2, health and reflection on
one ``grpc.aio`` server sharing the gateway's event loop and state.

TorchServe's management service is not registered, so every management RPC answers
UNIMPLEMENTED. Messages over ``max_body_bytes`` are refused by gRPC itself with
RESOURCE_EXHAUSTED before they reach a handler (and so are not counted per route).
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway.grpc.oip import OipService
from gateway.grpc.stubs import (
    grpc_predict_v2_pb2,
    grpc_predict_v2_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
)
from gateway.grpc.torchserve import TorchServeService
from gateway.settings import GatewaySettings
from gateway.state import Gateway

log = logging.getLogger(__name__)
TORCHSERVE = inference_pb2.DESCRIPTOR.services_by_name["InferenceAPIsService"].full_name
OIP = grpc_predict_v2_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
SERVICES = (TORCHSERVE, OIP)


class GrpcServer:
    def __init__(self, gw: Gateway, settings: GatewaySettings) -> None:
        """The port is bound with SO_REUSEPORT: worker processes and a successor gateway
        listen on it too (gRPC cannot adopt a socket). A fresh primary checks first that
        nothing listens there (``gateway.listeners.ensure_free``)."""
        limit = settings.max_body_bytes
        self.server: Any = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", -1),
                ("grpc.so_reuseport", 1),
            ]
        )
        inference_pb2_grpc.add_InferenceAPIsServiceServicer_to_server(
            TorchServeService(gw), self.server
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            OipService(gw), self.server
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, self.server)
        address = f"{settings.grpc_host}:{settings.grpc_port}"
        self.port: int = self.server.add_insecure_port(address)
        self.address = f"{settings.grpc_host}:{self.port}"
        self.started = False

    async def start(self) -> None:
        await self.server.start()
        for service in ("", *SERVICES):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self.started = True
        log.info("gRPC on %s", self.address)

    async def stop(self, grace_s: float) -> None:
        """Stop accepting (the listener closes at once), report NOT_SERVING, send GOAWAY, and
        let calls in flight (unary and streaming) finish for up to ``grace_s``."""
        if self.started:
            await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        self.started = False
