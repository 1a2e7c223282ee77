"""Envoy clusters: the controller's two ports and one cluster per routing target."""

from __future__ import annotations

from typing import Any

from extproc.config.model import RouterConfig
from extproc.envoy_config.addresses import is_ip, socket_address
from extproc.envoy_config.ext_proc_filters import attempt_filters
from extproc.envoy_config.names import CONTROLLER_GRPC, CONTROLLER_HTTP, METADATA_NAMESPACE
from extproc.envoy_config.tls import upstream_tls
from extproc.routing.chains import chain_cluster_name
from extproc.routing.targets import Target, envoy_cluster_name

# Envoy's default allows 3 concurrent retries per cluster: a burst of failovers would overflow it (UO) and
# fail requests a fallback could have served. Admission is the controller's job (queue depth, rate limits).
CIRCUIT_BREAKERS = {
    "thresholds": [
        {
            "priority": "DEFAULT",
            "max_retries": 10_000,
            "max_connections": 10_000,
            "max_pending_requests": 10_000,
            "max_requests": 10_000,
        }
    ]
}
CONTROLLER_HEALTH_CHECK = {
    # Two failed checks in a row: one slow answer on a loaded machine does not take a replica out.
    "timeout": "2s",
    "interval": "1s",
    "unhealthy_threshold": 2,
    "healthy_threshold": 1,
    "no_traffic_interval": "1s",
}
# Envoy's active health check is the fast path for a dead cluster; the controller's poller is the slow one.
MAX_HEALTH_CHECK_INTERVAL = 5.0


def controller_grpc(host: str, ports: list[tuple[int, int]]) -> dict[str, Any]:
    """Every controller replica's ext_proc port, gRPC-health-checked so a draining replica gets no new stream."""
    cluster = _static(CONTROLLER_GRPC, host, [grpc for grpc, _ in ports])
    cluster["typed_extension_protocol_options"] = _http_options(
        {
            "explicit_http_config": {
                "http2_protocol_options": {"connection_keepalive": {"interval": "30s", "timeout": "5s"}},
            }
        }
    )
    cluster["health_checks"] = [{**CONTROLLER_HEALTH_CHECK, "grpc_health_check": {}}]
    return cluster


def controller_http(host: str, ports: list[tuple[int, int]]) -> dict[str, Any]:
    cluster = _static(CONTROLLER_HTTP, host, [http for _, http in ports])
    cluster["health_checks"] = [{**CONTROLLER_HEALTH_CHECK, "http_health_check": {"path": "/livez"}}]
    return cluster


def target_cluster(target: Target, router: RouterConfig, prepared: bool) -> dict[str, Any]:
    """`prepared`: the router's ext_proc may prepare a first attempt (Config.prepares_first_attempts)."""
    url = target.url
    cluster: dict[str, Any] = {
        "name": target.envoy_cluster,
        "type": "STATIC" if is_ip(url.host) else ("STRICT_DNS" if target.is_cluster else "LOGICAL_DNS"),
        "connect_timeout": f"{target.limits.connect_timeout:g}s",
        "dns_lookup_family": "V4_PREFERRED",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": target.envoy_cluster,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {"address": socket_address(url.host, url.port), "hostname": url.host},
                            "metadata": {"filter_metadata": {METADATA_NAMESPACE: {"target": target.name}}},
                        }
                    ]
                }
            ],
        },
        "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
        "circuit_breakers": CIRCUIT_BREAKERS,
        "typed_extension_protocol_options": _attempt_filters(prepared),
    }
    if url.tls:
        cluster["transport_socket"] = upstream_tls(url, target.cluster.tls if target.cluster else None)
    if target.is_cluster:
        interval = min(router.health_check_interval, MAX_HEALTH_CHECK_INTERVAL)
        cluster["health_checks"] = [
            {
                "timeout": "1s",
                "interval": f"{interval:g}s",
                "unhealthy_threshold": 1,
                "healthy_threshold": 1,
                "http_health_check": {"path": f"{url.path}/health"},
            }
        ]
    return cluster


def chain_cluster(chain: tuple[str, ...], prepared: bool) -> dict[str, Any]:
    """An aggregate cluster: its children, in order, are the chain's priorities; retries walk them."""
    return {
        "name": chain_cluster_name(chain),
        "connect_timeout": "5s",
        "lb_policy": "CLUSTER_PROVIDED",
        "cluster_type": {
            "name": "envoy.clusters.aggregate",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig",
                "clusters": [envoy_cluster_name(name) for name in chain],
            },
        },
        "circuit_breakers": CIRCUIT_BREAKERS,
        "typed_extension_protocol_options": _attempt_filters(prepared),
    }


def _attempt_filters(prepared: bool) -> dict[str, Any]:
    """Upstream filters run once per attempt (an aggregate's own; its children's are then ignored)."""
    return _http_options(
        {
            "explicit_http_config": {"http_protocol_options": {}},
            "http_filters": attempt_filters(prepared),
        }
    )


def _static(name: str, host: str, ports: list[int]) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC" if is_ip(host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(host, port)}} for port in ports]}],
        },
    }


def _http_options(options: dict[str, Any]) -> dict[str, Any]:
    return {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            **options,
        }
    }
