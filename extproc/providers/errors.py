"""OpenAI-shaped errors: the body a client gets for any failure, and how a target's error maps onto it."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.providers.base import TranslatedResponse

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}
_OVERLOADED = (503, 529)  # Gemini UNAVAILABLE, Anthropic overloaded_error
_MAX_TEXT = 500  # of a non-JSON error body quoted as the message


class TranslationError(ValueError):
    """The client's request cannot be expressed in the target's format; answer it with a 400."""


def error_type(status: int) -> str:
    """OpenAI's `type` for an error answered with `status`."""
    return "server_error" if status >= 500 else _TYPES.get(status, "invalid_request_error")


def error_object(
    status: int, message: str, *, type: str | None = None, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """`{"error": {...}}` as OpenAI sends it, in a response body or a stream event."""
    return {"error": {"message": message, "type": type or error_type(status), "param": param, "code": code}}


def openai_error(
    status: int, message: str, *, type: str | None = None, code: str | None = None, param: str | None = None
) -> bytes:
    """The serialised OpenAI error body for a response with `status`."""
    return orjson.dumps(error_object(status, message, type=type, code=code, param=param))


def client_status(upstream_status: int) -> int:
    """The status a client sees for a target's error: overloaded -> 503, other 5xx -> 502, 4xx kept."""
    if upstream_status in _OVERLOADED:
        return 503
    return 502 if upstream_status >= 500 else upstream_status


def error_response(
    upstream_status: int,
    message: str,
    *,
    type: str | None = None,
    code: str | None = None,
    param: str | None = None,
    retry_after: str | None = None,
) -> TranslatedResponse:
    """A target's failure as the OpenAI-shaped response the client gets."""
    status = client_status(upstream_status)
    body = openai_error(status, message, type=type, code=code, param=param)
    return TranslatedResponse(status=status, body=body, usage=None, retry_after=retry_after)


def malformed_response() -> TranslatedResponse:
    """A success status whose body is not the JSON object the target's API promises."""
    return error_response(502, "the upstream target returned a malformed response")


def parse_object(body: bytes) -> dict[str, Any] | None:
    """`body` as a JSON object, or None when it is anything else."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def provider_error(status: int, body: bytes) -> dict[str, Any]:
    """The `error` object of a target's error body in any provider's shape, always with a string `message`.

    OpenAI, Anthropic and Gemini all nest it under `error` (Gemini streams it inside a one-element array);
    a body that is not JSON (a proxy's HTML page, say) becomes the message.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = body.decode("utf-8", "replace").strip()[:_MAX_TEXT]
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else data
    if not isinstance(error, dict):
        error = {"message": error}
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = f"the upstream target answered HTTP {status}"
    return {**error, "message": message}


def text_field(error: dict[str, Any], key: str) -> str | None:
    """`error[key]` when it is a string (providers put numbers or objects in some of these fields)."""
    value = error.get(key)
    return value if isinstance(value, str) else None
