"""The cluster gateway's verifier process: ext_authz gRPC for the cluster-side Envoy, plus /health and /metrics."""

from __future__ import annotations

import asyncio
import logging

import grpc
from aiohttp import web
from envoy.service.auth.v3.external_auth_pb2_grpc import add_AuthorizationServicer_to_server
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from extproc.security.authz import SignatureAuthorization
from extproc.security.gateway_config import GatewayConfig
from extproc.security.verifier import HmacVerifier

log = logging.getLogger(__name__)


class GatewayVerifier:
    def __init__(self, config: GatewayConfig) -> None:
        assert config.shared_secret, "the verifier needs the shared secret"
        self.config = config
        self.verifier = HmacVerifier(config.shared_secret, config.signature_window, config.max_nonces)
        self.registry = CollectorRegistry()
        checks = Counter("llm_router_gateway_checks", "Signature checks by result", ["result"], registry=self.registry)
        nonces = Gauge("llm_router_gateway_nonces", "Nonces remembered against replay", registry=self.registry)
        nonces.set_function(lambda: len(self.verifier.nonces))
        self.authorization = SignatureAuthorization(self.verifier, checks)
        self._grpc: grpc.aio.Server | None = None
        self._http: web.AppRunner | None = None

    async def start(self) -> None:
        server = self.config.server
        host = server.controller_bind_host or server.controller_host
        # The body travels inside the gRPC message: allow the largest body Envoy lets through, plus headers.
        limit = server.max_request_bytes + 2**20
        self._grpc = grpc.aio.server(options=(("grpc.max_receive_message_length", limit),))
        add_AuthorizationServicer_to_server(self.authorization, self._grpc)
        self._grpc.add_insecure_port(f"{host}:{server.grpc_port}")
        await self._grpc.start()
        self._http = web.AppRunner(self._admin_app(), access_log=None)
        await self._http.setup()
        await web.TCPSite(self._http, host, server.http_port).start()
        log.info(
            "cluster gateway verifier: ext_authz gRPC on %s:%d, admin HTTP on %s:%d (window %gs)",
            host,
            server.grpc_port,
            host,
            server.http_port,
            self.config.signature_window,
        )

    def _admin_app(self) -> web.Application:
        async def health(_: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.registry), headers={"content-type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_get("/metrics", metrics)
        return app

    async def stop(self, grace: float = 5.0) -> None:
        if self._grpc:
            await self._grpc.stop(grace)
        if self._http:
            await self._http.cleanup()


async def serve_forever(config: GatewayConfig, stop: asyncio.Event) -> None:
    gateway = GatewayVerifier(config)
    await gateway.start()
    try:
        await stop.wait()
    finally:
        await gateway.stop()
