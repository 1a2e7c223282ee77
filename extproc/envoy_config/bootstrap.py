"""Render Envoy's bootstrap from the router config, so the controller and Envoy never drift apart.

The rendered file holds no secret: provider keys and cluster secrets live only in the controller,
which injects them per request.
"""

from __future__ import annotations

from typing import Any

import yaml

from extproc.config.model import Config
from extproc.envoy_config import clusters as envoy_clusters
from extproc.envoy_config.local_replies import local_reply_config
from extproc.headers import CLUSTER_HEADER
from extproc.routing.targets import build_targets

EXT_PROC_FILTER = "envoy.filters.http.ext_proc"
ADMIN_PATHS = ("/health", "/metrics", "/v1/models")
ADMIN_PREFIXES = ("/v1/router/", "/dashboard")
# Envoy waits this long for each controller reply; a decision takes well under a millisecond.
MESSAGE_TIMEOUT = "2s"


def render_bootstrap(config: Config) -> dict[str, Any]:
    server = config.server
    return {
        "node": {"id": "llm-router", "cluster": "llm-router"},
        "admin": {"address": _address("127.0.0.1", server.envoy_admin_port)},
        "static_resources": {
            "listeners": [_listener(config)],
            "clusters": [
                envoy_clusters.controller_grpc(server.controller_host, server.grpc_port),
                envoy_clusters.controller_http(server.controller_host, server.http_port),
                *(envoy_clusters.target_cluster(t, config.router) for t in build_targets(config)),
            ],
        },
    }


def render_bootstrap_yaml(config: Config) -> str:
    return yaml.safe_dump(render_bootstrap(config), sort_keys=False)


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _listener(config: Config) -> dict[str, Any]:
    return {
        "name": "llm_router",
        "address": _address(config.server.host, config.server.port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": _connection_manager(config),
                    }
                ]
            }
        ],
    }


def _connection_manager(config: Config) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": "llm_router",
        "generate_request_id": True,
        "always_set_request_id_in_response": True,
        "stream_idle_timeout": f"{max(config.server.request_timeout, 60):.0f}s",
        "local_reply_config": local_reply_config(),
        "access_log": [_access_log()],
        "route_config": _routes(config),
        "http_filters": [
            _ext_proc_filter(),
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }


def _ext_proc_filter() -> dict[str, Any]:
    return {
        "name": EXT_PROC_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
            "grpc_service": {"envoy_grpc": {"cluster_name": envoy_clusters.CONTROLLER_GRPC}},
            # Fail closed: without the controller no request can be priced, authorised or rewritten.
            "failure_mode_allow": False,
            "message_timeout": MESSAGE_TIMEOUT,
            # Headers must be SEND so the route is still open when the body reply sets the cluster header.
            "processing_mode": {
                "request_header_mode": "SEND",
                "request_body_mode": "BUFFERED",
                "response_header_mode": "SEND",
                "response_body_mode": "NONE",
                "request_trailer_mode": "SKIP",
                "response_trailer_mode": "SKIP",
            },
            "allow_mode_override": True,
            "mutation_rules": {"allow_all_routing": True},
        },
    }


def _disabled_ext_proc() -> dict[str, Any]:
    return {
        EXT_PROC_FILTER: {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute",
            "disabled": True,
        }
    }


def _routes(config: Config) -> dict[str, Any]:
    admin_route = {"cluster": envoy_clusters.CONTROLLER_HTTP, "timeout": "30s"}
    routes: list[dict[str, Any]] = [
        {"match": {"path": p}, "route": admin_route, "typed_per_filter_config": _disabled_ext_proc()}
        for p in ADMIN_PATHS
    ]
    routes += [
        {"match": {"prefix": p}, "route": admin_route, "typed_per_filter_config": _disabled_ext_proc()}
        for p in ADMIN_PREFIXES
    ]
    routes.append(
        {
            "match": {"path": "/v1/chat/completions"},
            "route": {
                "cluster_header": CLUSTER_HEADER,
                "timeout": f"{config.server.request_timeout:g}s",
                "auto_host_rewrite": True,
            },
        }
    )
    routes.append(
        {
            "match": {"prefix": "/"},
            "direct_response": {"status": 404, "body": {"inline_string": _not_found_body()}},
            "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}}],
            "typed_per_filter_config": _disabled_ext_proc(),
        }
    )
    return {
        "name": "llm_router",
        "virtual_hosts": [
            {
                "name": "llm_router",
                "domains": ["*"],
                "request_body_buffer_limit": config.server.max_request_bytes,
                "routes": routes,
            }
        ],
    }


def _not_found_body() -> str:
    return (
        '{"error": {"message": "Unknown path: this router serves POST /v1/chat/completions, '
        'GET /v1/models, /health and /metrics.", "type": "invalid_request_error", "param": null, '
        '"code": "unknown_url"}}'
    )


def _access_log() -> dict[str, Any]:
    return {
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {
                "json_format": {
                    "time": "%START_TIME%",
                    "request_id": "%REQ(X-REQUEST-ID)%",
                    "method": "%REQ(:METHOD)%",
                    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
                    "status": "%RESPONSE_CODE%",
                    "flags": "%RESPONSE_FLAGS%",
                    "cluster": "%UPSTREAM_CLUSTER%",
                    "duration_ms": "%DURATION%",
                    "bytes_in": "%BYTES_RECEIVED%",
                    "bytes_out": "%BYTES_SENT%",
                }
            },
        },
    }
