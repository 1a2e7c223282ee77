"""Render Envoy's bootstrap from the router config, so the controller and Envoy never drift apart.

The rendered file holds no secret: provider keys and cluster secrets live only in the controller,
which injects them per request.
"""

from __future__ import annotations

from typing import Any

import yaml

from extproc.auth.envoy import auth_disabled_on_route, auth_filters
from extproc.config.model import Config
from extproc.envoy_config import clusters as envoy_clusters
from extproc.envoy_config.addresses import socket_address
from extproc.envoy_config.ext_proc_filters import (
    disabled_on_route,
    prepared_access_log,
    route_filter,
    stream_usage_to_metadata,
    usage_to_metadata,
)
from extproc.envoy_config.local_replies import local_reply_config
from extproc.envoy_config.names import CHAT_COMPLETIONS_PATH, CONTROLLER_HTTP, DECISION_NAMESPACE, METADATA_NAMESPACE
from extproc.envoy_config.tls import listener_tls
from extproc.headers import ARM_HEADER, CLUSTER_HEADER, ESTIMATED_COST_HEADER, REASON_HEADER, TARGET_HEADER
from extproc.reliability.guards import TARGET_FAILURE_STATUSES
from extproc.routing.chains import all_chains
from extproc.routing.targets import build_targets

ADMIN_PATHS = ("/health", "/metrics", "/v1/models")
ADMIN_PREFIXES = ("/v1/models/", "/v1/router/", "/dashboard")


def render_bootstrap(config: Config) -> dict[str, Any]:
    server = config.server
    targets = build_targets(config)
    return {
        "node": {"id": "llm-router", "cluster": "llm-router"},
        "admin": {"address": socket_address("127.0.0.1", server.envoy_admin_port)},
        "static_resources": {
            "listeners": [_listener(config)],
            "clusters": [
                envoy_clusters.controller_grpc(server.controller_host, server.controller_ports()),
                envoy_clusters.controller_http(server.controller_host, server.controller_ports()),
                *(envoy_clusters.target_cluster(t, config.router, config.prepares_first_attempts) for t in targets),
                *(
                    envoy_clusters.chain_cluster(c, config.prepares_first_attempts)
                    for c in all_chains([t.name for t in targets], config.router.max_fallbacks)
                ),
            ],
        },
    }


def render_bootstrap_yaml(config: Config) -> str:
    return yaml.safe_dump(render_bootstrap(config), sort_keys=False)


def _listener(config: Config) -> dict[str, Any]:
    return {
        "name": "llm_router",
        "address": socket_address(config.server.host, config.server.port),
        # HTTP/1 bodies the ext_proc buffers are bounded by this: larger ones get a 413 (OpenAI-shaped).
        "per_connection_buffer_limit_bytes": config.server.max_request_bytes,
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": _connection_manager(config),
                    }
                ],
                **listener_tls(config.server.tls),
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
        "access_log": [_access_log(), *([prepared_access_log()] if config.prepares_first_attempts else [])],
        "route_config": _routes(config),
        "http_filters": [
            *auth_filters(config.auth),
            route_filter(),
            *([usage_to_metadata(), stream_usage_to_metadata()] if config.prepares_first_attempts else []),
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
            },
        ],
    }


def _routes(config: Config) -> dict[str, Any]:
    admin_route = {"cluster": CONTROLLER_HTTP, "timeout": "30s"}
    unfiltered = {**disabled_on_route(), **auth_disabled_on_route(config.auth)}  # no key, no ext_proc
    routes: list[dict[str, Any]] = [
        {"match": {"path": p}, "route": admin_route, "typed_per_filter_config": unfiltered} for p in ADMIN_PATHS
    ]
    routes += [
        {"match": {"prefix": p}, "route": admin_route, "typed_per_filter_config": unfiltered} for p in ADMIN_PREFIXES
    ]
    routes.append(
        {
            "match": {"path": CHAT_COMPLETIONS_PATH},
            "route": {
                "cluster_header": CLUSTER_HEADER,
                "timeout": f"{config.server.request_timeout:g}s",
                "auto_host_rewrite": True,
                "retry_policy": _failover_policy(config),
            },
            "response_headers_to_add": _router_response_headers(),
        }
    )
    routes.append(
        {
            "match": {"prefix": "/"},
            "direct_response": {"status": 404, "body": {"inline_string": _not_found_body()}},
            "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}}],
            "typed_per_filter_config": unfiltered,
        }
    )
    return {
        "name": "llm_router",
        "virtual_hosts": [
            {
                "name": "llm_router",
                "domains": ["*"],
                "request_body_buffer_limit": config.server.max_request_bytes,
                "include_request_attempt_count": True,
                "routes": routes,
            }
        ],
    }


def _router_response_headers() -> list[dict[str, Any]]:
    """Which target answered and why, from Envoy's own data: the upstream host's metadata and the decision's.

    For a first try the router prepared, no attempt exchange sees the response; otherwise the attempt's
    exchange has set them already (a fallback's reason, its estimate), and those stay.
    """
    values = {
        TARGET_HEADER: f"%UPSTREAM_METADATA({METADATA_NAMESPACE}:target)%",
        REASON_HEADER: f"%DYNAMIC_METADATA({DECISION_NAMESPACE}:reason)%",
        ESTIMATED_COST_HEADER: f"%DYNAMIC_METADATA({DECISION_NAMESPACE}:estimate)%",
        ARM_HEADER: f"%DYNAMIC_METADATA({DECISION_NAMESPACE}:arm)%",
    }
    return [{"header": {"key": k, "value": v}, "append_action": "ADD_IF_ABSENT"} for k, v in values.items()]


def _failover_policy(config: Config) -> dict[str, Any]:
    """Retries walk the chain: each retry goes to the aggregate cluster's next priority (the next target).

    Retried: connect failures, resets, the target failures of `TARGET_FAILURE_STATUSES` (a refused credential
    of the router's, 429), 5xx and Anthropic's 529 — all before any response byte went to the client (Envoy
    never retries once headers are downstream, so a stream is never duplicated).
    """
    return {
        "retry_on": "connect-failure,refused-stream,reset,5xx,retriable-status-codes",
        "retriable_status_codes": [*sorted(TARGET_FAILURE_STATUSES), 529],
        "num_retries": config.router.max_fallbacks,
        # A target that sends nothing for this long is given up on (the next one in the chain is tried).
        "per_try_idle_timeout": f"{config.router.first_byte_timeout:g}s",
        "retry_priority": {
            "name": "envoy.retry_priorities.previous_priorities",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3"
                ".PreviousPrioritiesConfig",
                "update_frequency": 1,
            },
        },
        "retry_back_off": {"base_interval": "0.005s", "max_interval": "0.05s"},
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
