"""The ext_authz filter in Envoy's bootstrap: first in the chain, gRPC to the controller, failing closed.

Envoy files a check's dynamic metadata under `envoy.filters.http.ext_authz` whatever the filter is called;
both ext_proc filters forward that namespace to the controller.
"""

from __future__ import annotations

from typing import Any

from extproc.auth.gate import KEY_HEADERS
from extproc.config.model import AuthConfig
from extproc.envoy_config.names import CONTROLLER_GRPC
from extproc.headers import STRATEGY_HEADER

EXT_AUTHZ_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
PER_ROUTE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
EXT_AUTHZ = "envoy.filters.http.ext_authz"
CHECK_TIMEOUT = "2s"


def auth_filters(auth: AuthConfig) -> list[dict[str, Any]]:
    """The ext_authz filter when auth is on; only the key and strategy headers are sent to the controller."""
    if not auth.enabled:
        return []
    return [
        {
            "name": EXT_AUTHZ,
            "typed_config": {
                "@type": EXT_AUTHZ_TYPE,
                "grpc_service": {"envoy_grpc": {"cluster_name": CONTROLLER_GRPC}, "timeout": CHECK_TIMEOUT},
                "transport_api_version": "V3",
                "failure_mode_allow": False,
                # Like ext_proc failing closed: the local 500 becomes the OpenAI-shaped 503 `router_unavailable`.
                "status_on_error": {"code": 500},
                "allowed_headers": {"patterns": [{"exact": h} for h in (*KEY_HEADERS, STRATEGY_HEADER)]},
            },
        }
    ]


def auth_disabled_on_route(auth: AuthConfig) -> dict[str, Any]:
    """typed_per_filter_config entry for routes that need no key (admin paths, the 404)."""
    if not auth.enabled:
        return {}
    return {EXT_AUTHZ: {"@type": PER_ROUTE_TYPE, "disabled": True}}
