"""The two ext_proc filters: the router's (downstream, decides) and the attempt's (upstream, translates).

Both fail closed: without the controller no request can be priced, authorised or rewritten, and a request
sent on unrewritten would carry no credentials to a target anyway.
"""

from __future__ import annotations

from typing import Any

from extproc.envoy_config.names import (
    ATTEMPT_PHASE,
    AUTH_NAMESPACE,
    CONTROLLER_GRPC,
    DECISION_NAMESPACE,
    ROUTE_PHASE,
)
from extproc.headers import PHASE_METADATA

EXT_PROC = "envoy.filters.http.ext_proc"
EXT_PROC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"
# Envoy waits this long for each controller reply; a decision takes well under a millisecond.
MESSAGE_TIMEOUT = "2s"


def route_filter() -> dict[str, Any]:
    """Request headers SEND (keeps the route open for the cluster header) + buffered body: two messages."""
    return {
        "name": EXT_PROC,
        "typed_config": {
            **_common(ROUTE_PHASE),
            "processing_mode": _mode(response_headers="SKIP"),
            "metadata_options": {
                "forwarding_namespaces": {"untyped": [AUTH_NAMESPACE]},
                "receiving_namespaces": {"untyped": [DECISION_NAMESPACE]},
            },
        },
    }


def attempt_filter() -> dict[str, Any]:
    """Per attempt: which target (upstream host metadata), the body to translate, and the response phases."""
    return {
        "name": EXT_PROC,
        "typed_config": {
            **_common(ATTEMPT_PHASE),
            "processing_mode": _mode(response_headers="SEND"),
            "allow_mode_override": True,
            "request_attributes": ["xds.upstream_host_metadata"],
            "metadata_options": {"forwarding_namespaces": {"untyped": [DECISION_NAMESPACE, AUTH_NAMESPACE]}},
        },
    }


def upstream_codec() -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.upstream_codec",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec",
        },
    }


def disabled_on_route() -> dict[str, Any]:
    return {
        EXT_PROC: {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute",
            "disabled": True,
        }
    }


def _common(phase: str) -> dict[str, Any]:
    return {
        "@type": EXT_PROC_TYPE,
        "grpc_service": {
            "envoy_grpc": {"cluster_name": CONTROLLER_GRPC},
            "initial_metadata": [{"key": PHASE_METADATA, "value": phase}],
        },
        "failure_mode_allow": False,
        "message_timeout": MESSAGE_TIMEOUT,
        "mutation_rules": {"allow_all_routing": True},
    }


def _mode(response_headers: str) -> dict[str, str]:
    return {
        "request_header_mode": "SEND",
        "request_body_mode": "BUFFERED",
        "response_header_mode": response_headers,
        "response_body_mode": "NONE",
        "request_trailer_mode": "SKIP",
        "response_trailer_mode": "SKIP",
    }
