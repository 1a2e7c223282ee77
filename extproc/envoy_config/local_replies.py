"""Envoy's own error replies (no route, no healthy upstream, timeout, body too large) in OpenAI's shape."""

from __future__ import annotations

from typing import Any

_ERRORS = (
    # (response flag or status, status sent, type, code, message)
    ("NR", 404, "invalid_request_error", "unknown_url", "Unknown path."),
    ("UH", 503, "server_error", "no_healthy_upstream", "The chosen target has no healthy endpoint."),
    ("UF", 503, "server_error", "upstream_connect_failure", "The chosen target could not be reached."),
    ("URX", 503, "server_error", "upstream_retry_limit", "Every target in the chain failed."),
    ("UO", 503, "server_error", "upstream_overflow", "The chosen target is overloaded."),
    ("UT", 504, "server_error", "upstream_timeout", "The target did not answer in time."),
    ("UC", 502, "server_error", "upstream_connection_termination", "The target closed the connection."),
    ("UPE", 502, "server_error", "upstream_protocol_error", "The target sent a malformed response."),
)


def local_reply_config() -> dict[str, Any]:
    mappers = [
        _mapper({"response_flag_filter": {"flags": [flag]}}, status, kind, code, message)
        for flag, status, kind, code, message in _ERRORS
    ]
    # A local 500 is the ext_proc filter failing closed: the controller is gone or did not answer in time.
    mappers.append(
        _mapper(
            _status_is(500),
            503,
            "server_error",
            "router_unavailable",
            "The router's controller is unavailable, so no request can be priced, authorised or "
            "routed (Envoy fails closed). Retry shortly.",
        )
    )
    mappers.append(
        _mapper(
            _status_is(413),
            413,
            "invalid_request_error",
            "request_too_large",
            "The request body is larger than the router accepts.",
        )
    )
    return {"mappers": mappers}


def _status_is(status: int) -> dict[str, Any]:
    return {"status_code_filter": {"comparison": {"op": "EQ", "value": {"default_value": status, "runtime_key": "_"}}}}


def _mapper(filter_: dict[str, Any], status: int, kind: str, code: str, message: str) -> dict[str, Any]:
    return {
        "filter": filter_,
        "status_code": status,
        "body_format_override": {
            "json_format": {"error": {"message": message, "type": kind, "param": None, "code": code}},
            "content_type": "application/json",
        },
    }
