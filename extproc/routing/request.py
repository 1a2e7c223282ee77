"""Parse and check an OpenAI chat-completions request body, once, into what routing needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from extproc.routing import tokens

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class BadRequest(Exception):
    """A client error, reported as an OpenAI-shaped 400 (or `status`)."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status


@dataclass(slots=True)
class ChatRequest:
    body: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool  # whether the client itself asked for the usage chunk of a stream
    max_tokens: int | None
    input_tokens: int
    has_tools: bool


def parse_chat_request(raw: bytes) -> ChatRequest:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"We could not parse the JSON body of your request ({exc}). The body must be valid UTF-8 JSON.",
            code="invalid_json",
        ) from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_type")
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list):
        raise BadRequest(
            "Invalid type for 'messages': expected an array of message objects.",
            param="messages",
            code="invalid_type",
        )
    if not messages:
        raise BadRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param="messages",
            code="empty_array",
        )
    for index, message in enumerate(messages):
        _check_message(message, index)
    model = body.get("model", "auto")
    if not isinstance(model, str):
        raise BadRequest("Invalid type for 'model': expected a string.", param="model", code="invalid_type")
    stream = _optional(body, "stream", bool, "a boolean") or False
    options = _optional(body, "stream_options", dict, "an object") or {}
    max_tokens = _max_tokens(body)
    tools = _optional(body, "tools", list, "an array")
    _check_sampling(body)
    return ChatRequest(
        body=body,
        model=model,
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        max_tokens=max_tokens,
        input_tokens=tokens.prompt_tokens(messages, len(orjson.dumps(tools)) if tools else 0),
        has_tools=bool(tools),
    )


def _check_message(message: Any, index: int) -> None:
    at = f"messages[{index}]"
    if not isinstance(message, dict):
        raise BadRequest(f"Invalid type for '{at}': expected an object.", param=at, code="invalid_type")
    role = message.get("role")
    if role not in ROLES:
        raise BadRequest(
            f"Invalid value for '{at}.role': {role!r}. Supported values are: "
            "'system', 'developer', 'user', 'assistant', 'tool' and 'function'.",
            param=f"{at}.role",
            code="invalid_value",
        )
    content = message.get("content")
    if (content is None and role in ("assistant", "function")) or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise BadRequest(
            f"Invalid type for '{at}.content': expected a string or an array of content parts.",
            param=f"{at}.content",
            code="invalid_type",
        )
    for part_index, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise BadRequest(
                f"Invalid content part '{at}.content[{part_index}]': expected an object with a type.",
                param=f"{at}.content[{part_index}]",
                code="invalid_type",
            )


def _optional(body: dict[str, Any], key: str, kind: type, described: str) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise BadRequest(f"Invalid type for '{key}': expected {described}.", param=key, code="invalid_type")
    return value


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"Invalid type for '{key}': expected an integer.", param=key, code="invalid_type")
        if value < 1:
            raise BadRequest(
                f"Invalid '{key}': integer below minimum value 1.", param=key, code="integer_below_min_value"
            )
        return value
    return None


def _check_sampling(body: dict[str, Any]) -> None:
    for key, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(f"Invalid type for '{key}': expected a number.", param=key, code="invalid_type")
        if not low <= value <= high:
            raise BadRequest(f"Invalid '{key}': must be between {low} and {high}.", param=key, code="invalid_value")
