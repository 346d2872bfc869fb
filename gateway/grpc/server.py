"""The gateway's gRPC listener: TorchServe's inference API, OIP v2, health and reflection on
one ``grpc.aio`` server sharing the gateway's event loop and state.

TorchServe's management service is not registered, so every management RPC answers
UNIMPLEMENTED. Messages over ``max_body_bytes`` are refused by gRPC itself with
RESOURCE_EXHAUSTED before they reach a handler (and so are not counted per route).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc
import psutil
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway.dataplane import DataPlane
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
LISTENER_CLOSE_S = 2.0


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
        dataplane = DataPlane(gw)
        inference_pb2_grpc.add_InferenceAPIsServiceServicer_to_server(
            TorchServeService(dataplane), self.server
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            OipService(dataplane), self.server
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

    async def begin_stop(self, grace_s: float) -> asyncio.Task[None]:
        """Stop accepting: returns once the listener is closed (gRPC closes it from its own
        threads, so this waits until the process holds no listening socket on the port). The
        task returned ends when the calls in flight (unary and streaming, told by GOAWAY)
        have finished, or at ``grace_s``."""
        stopping = asyncio.create_task(self.server.stop(grace_s), name="grpc-stop")
        deadline = time.monotonic() + LISTENER_CLOSE_S
        while _listening(self.port) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if self.started:
            await self.health.enter_graceful_shutdown()
        self.started = False
        return stopping

    async def stop(self, grace_s: float) -> None:
        await (await self.begin_stop(grace_s))


def _listening(port: int) -> bool:
    """Whether this process holds a listening TCP socket on ``port``."""
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
        for c in psutil.Process().net_connections(kind="tcp")
    )
