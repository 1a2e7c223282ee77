"""The controller process: one gRPC server (ext_proc, ext_authz, access log), the admin HTTP server and the
cluster poller, around one runtime."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from pathlib import Path

import grpc
from aiohttp import web
from envoy.service.accesslog.v3.als_pb2_grpc import add_AccessLogServiceServicer_to_server
from envoy.service.auth.v3.external_auth_pb2_grpc import add_AuthorizationServicer_to_server
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from extproc.auth.service import Authorization
from extproc.clusters.poller import ClusterPoller
from extproc.config.model import Config
from extproc.server.access_log import AccessLog
from extproc.server.admin import admin_app
from extproc.server.ext_proc import ExternalProcessor
from extproc.server.memory import add_ext_proc_servicer
from extproc.server.reload import ConfigWatcher
from extproc.server.runtime import Runtime
from extproc.server.workers import is_worker

log = logging.getLogger(__name__)

GRPC_OPTIONS = (
    ("grpc.max_concurrent_streams", 10_000),
    ("grpc.max_receive_message_length", 64 * 2**20),
    ("grpc.max_send_message_length", 64 * 2**20),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
)


# How long a stopping replica reports NOT_SERVING before it stops taking streams: Envoy's gRPC health check
# (1 s interval, 2 failures in a row, see envoy_config.clusters) must have seen it, so no new request is sent.
DRAIN_SECONDS = 3.5


class Controller:
    """One controller replica (`replica` 0 is the main one; others are `server.replicas[replica - 1]`)."""

    def __init__(self, config: Config, replica: int = 0, config_path: Path | None = None) -> None:
        self.runtime = Runtime.build(config)
        self._watcher = ConfigWatcher(config_path, self.apply) if config_path else None
        self.grpc_port, self.http_port = config.server.controller_ports()[replica]
        self._health = health.aio.HealthServicer()
        self._grpc: grpc.aio.Server | None = None
        self._http: web.AppRunner | None = None
        self._poller: ClusterPoller | None = None
        self._draining = False

    def current(self) -> Runtime:
        return self.runtime

    async def start(self) -> None:
        config = self.runtime.config
        host = config.server.controller_bind_host or config.server.controller_host
        self._grpc = grpc.aio.server(options=GRPC_OPTIONS)
        add_ext_proc_servicer(ExternalProcessor(self.current), self._grpc)
        add_AuthorizationServicer_to_server(Authorization(self.current), self._grpc)
        add_AccessLogServiceServicer_to_server(AccessLog(self.current), self._grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
        self._grpc.add_insecure_port(f"{host}:{self.grpc_port}")
        await self._grpc.start()
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        self._http = web.AppRunner(admin_app(self.current, self.draining), access_log=None)
        await self._http.setup()
        await web.TCPSite(self._http, host, self.http_port, reuse_port=is_worker()).start()
        self._start_poller()
        if self._watcher:
            self._watcher.start()
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._watcher.reload)
        log.info(
            "controller serving: ext_proc gRPC on %s:%d, admin HTTP on %s:%d",
            host,
            self.grpc_port,
            host,
            self.http_port,
        )

    def apply(self, config: Config) -> None:
        """Swap in a new config: requests in flight finish on the runtime they started with."""
        previous = self.runtime
        targets_before = {t.name: t.url for t in previous.router.targets}
        self.runtime = Runtime.build(config, previous)
        if {t.name: t.url for t in self.runtime.router.targets} != targets_before:
            log.warning(
                "the set of targets changed: render the Envoy config again (llm-router envoy-config) "
                "and restart Envoy for it to route to them"
            )
        if self._poller is not None:
            old = self._poller
            asyncio.get_running_loop().create_task(old.stop())
            self._start_poller()

    def _start_poller(self) -> None:
        config = self.runtime.config
        self._poller = ClusterPoller(config.clusters, self.runtime.status, config.router.health_check_interval)
        self._poller.start()

    async def wait_clusters_polled(self) -> None:
        assert self._poller is not None
        await self._poller.first_round.wait()

    def draining(self) -> bool:
        return self._draining

    async def stop(self, drain: float = 0.0, grace: float = 10.0) -> None:
        """Report NOT_SERVING for `drain` seconds, then finish the streams in flight (up to `grace`)."""
        self._draining = True
        if self._watcher:
            await self._watcher.stop()
        if self._grpc and drain:
            await self._health.enter_graceful_shutdown()
            await asyncio.sleep(drain)
        if self._poller:
            await self._poller.stop()
        if self._grpc:
            await self._grpc.stop(grace)
        if self._http:
            await self._http.cleanup()
        await self.runtime.gate.close()
        await self.runtime.observer.stop()


async def serve_forever(config: Config, stop: asyncio.Event, replica: int = 0, config_path: Path | None = None) -> None:
    """Serve until `stop`, then drain: Envoy stops sending new requests before in-flight ones finish."""
    controller = Controller(config, replica, config_path)
    await controller.start()
    # Everything made at start-up (modules, protobuf descriptors, the runtime) lives as long as the process:
    # out of the collector's sight, a full collection walks only what requests made since, and stops the
    # loop for about a millisecond instead of ~20-30 ms every few thousand requests (docs/BENCHMARKS.md).
    gc.collect()
    gc.freeze()
    try:
        await stop.wait()
    finally:
        await controller.stop(drain=DRAIN_SECONDS)
