"""Render the cluster-side Envoy: a listener in front of one llama.cpp server, guarded by TLS/mTLS and ext_authz.

With a shared secret, every request except GETs of the public paths goes through ext_authz (the verifier,
`llm-router serve --role cluster-gateway`) with its whole body, since the signature covers the body. The
rendered file holds no secret: only the verifier knows it.
"""

from __future__ import annotations

from typing import Any

import yaml

from extproc.envoy_config.addresses import socket_address
from extproc.envoy_config.local_replies import local_reply_config
from extproc.envoy_config.tls import listener_tls, upstream_tls
from extproc.security.gateway_config import GatewayConfig

EXT_AUTHZ = "envoy.filters.http.ext_authz"
UPSTREAM = "llama"
VERIFIER = "verifier"
_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def render_gateway_bootstrap(config: GatewayConfig) -> dict[str, Any]:
    server = config.server
    clusters = [_upstream(config)]
    if config.shared_secret:
        clusters.append(_verifier(server.controller_host, server.grpc_port))
    return {
        "node": {"id": "llm-cluster-gateway", "cluster": "llm-cluster-gateway"},
        "admin": {"address": socket_address("127.0.0.1", server.envoy_admin_port)},
        "static_resources": {"listeners": [_listener(config)], "clusters": clusters},
    }


def render_gateway_bootstrap_yaml(config: GatewayConfig) -> str:
    return yaml.safe_dump(render_gateway_bootstrap(config), sort_keys=False)


def _listener(config: GatewayConfig) -> dict[str, Any]:
    verifies = bool(config.shared_secret)
    timeout = f"{config.server.request_timeout:g}s"
    public = [
        {
            "match": {"path": path, "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
            "route": {"cluster": UPSTREAM, "timeout": "10s"},
            **({"typed_per_filter_config": _authz_disabled()} if verifies else {}),
        }
        for path in config.public_paths
    ]
    manager = {
        "@type": _HCM,
        "stat_prefix": "cluster_gateway",
        "stream_idle_timeout": f"{max(config.server.request_timeout, 60):.0f}s",
        "local_reply_config": local_reply_config(),
        "route_config": {
            "name": "cluster_gateway",
            "virtual_hosts": [
                {
                    "name": UPSTREAM,
                    "domains": ["*"],
                    "request_body_buffer_limit": config.server.max_request_bytes,
                    "routes": [*public, {"match": {"prefix": "/"}, "route": {"cluster": UPSTREAM, "timeout": timeout}}],
                }
            ],
        },
        "http_filters": [
            *([_authz_filter(config.server.max_request_bytes)] if verifies else []),
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
            },
        ],
    }
    return {
        "name": "cluster_gateway",
        "address": socket_address(config.server.host, config.server.port),
        "filter_chains": [
            {
                "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}],
                **listener_tls(config.server.tls),
            }
        ],
    }


def _authz_filter(max_body: int) -> dict[str, Any]:
    """Fails closed; the body goes whole (never a partial message) and as bytes, exactly as it was signed."""
    return {
        "name": EXT_AUTHZ,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "grpc_service": {"envoy_grpc": {"cluster_name": VERIFIER}, "timeout": "2s"},
            "failure_mode_allow": False,
            "status_on_error": {"code": "ServiceUnavailable"},
            "with_request_body": {
                "max_request_bytes": max_body,
                "allow_partial_message": False,
                "pack_as_bytes": True,
            },
        },
    }


def _authz_disabled() -> dict[str, Any]:
    return {
        EXT_AUTHZ: {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
            "disabled": True,
        }
    }


def _upstream(config: GatewayConfig) -> dict[str, Any]:
    url = config.upstream
    cluster = _cluster(UPSTREAM, url.host, url.port, connect_timeout="5s")
    if url.tls:
        cluster["transport_socket"] = upstream_tls(url)
    return cluster


def _verifier(host: str, port: int) -> dict[str, Any]:
    cluster = _cluster(VERIFIER, host, port, connect_timeout="1s")
    cluster["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }
    return cluster


def _cluster(name: str, host: str, port: int, connect_timeout: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": connect_timeout,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(host, port)}}]}],
        },
    }
