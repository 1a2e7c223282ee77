"""The controller process: ext_proc gRPC server, admin HTTP server and cluster poller, sharing one runtime."""

from __future__ import annotations

import asyncio
import logging

import grpc
from aiohttp import web
from envoy.service.ext_proc.v3.external_processor_pb2_grpc import add_ExternalProcessorServicer_to_server

from extproc.clusters.poller import ClusterPoller
from extproc.config.model import Config
from extproc.server.admin import admin_app
from extproc.server.ext_proc import ExternalProcessor
from extproc.server.runtime import Runtime

log = logging.getLogger(__name__)

GRPC_OPTIONS = (
    ("grpc.max_concurrent_streams", 10_000),
    ("grpc.max_receive_message_length", 64 * 2**20),
    ("grpc.max_send_message_length", 64 * 2**20),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
)


class Controller:
    def __init__(self, config: Config) -> None:
        self.runtime = Runtime.build(config)
        self._grpc: grpc.aio.Server | None = None
        self._http: web.AppRunner | None = None
        self._poller: ClusterPoller | None = None

    def current(self) -> Runtime:
        return self.runtime

    async def start(self) -> None:
        config = self.runtime.config
        host = config.server.controller_bind_host or config.server.controller_host
        self._grpc = grpc.aio.server(options=GRPC_OPTIONS)
        add_ExternalProcessorServicer_to_server(ExternalProcessor(self.current), self._grpc)
        self._grpc.add_insecure_port(f"{host}:{config.server.grpc_port}")
        await self._grpc.start()
        self._http = web.AppRunner(admin_app(self.current), access_log=None)
        await self._http.setup()
        await web.TCPSite(self._http, host, config.server.http_port).start()
        self._poller = ClusterPoller(config.clusters, self.runtime.status, config.router.health_check_interval)
        self._poller.start()
        log.info(
            "controller serving: ext_proc gRPC on %s:%d, admin HTTP on %s:%d",
            host,
            config.server.grpc_port,
            host,
            config.server.http_port,
        )

    async def wait_clusters_polled(self) -> None:
        assert self._poller is not None
        await self._poller.first_round.wait()

    async def stop(self, grace: float = 5.0) -> None:
        if self._poller:
            await self._poller.stop()
        if self._grpc:
            await self._grpc.stop(grace)
        if self._http:
            await self._http.cleanup()


async def serve_forever(config: Config, stop: asyncio.Event) -> None:
    controller = Controller(config)
    await controller.start()
    try:
        await stop.wait()
    finally:
        await controller.stop()
