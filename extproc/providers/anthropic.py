"""OpenAI chat completions to the Anthropic Messages API (`POST /v1/messages`) and back."""

from __future__ import annotations

import time
from typing import Any

import orjson

from extproc.providers.base import Endpoint, TranslatedResponse, UpstreamRequest, Usage
from extproc.providers.errors import (
    TranslationError,
    client_status,
    error_response,
    malformed_response,
    parse_object,
    provider_error,
    text_field,
)
from extproc.providers.openai_compat import (
    ChunkStream,
    append_turn,
    completion,
    completion_id,
    content_parts,
    data_url,
    function_tools,
    image_url,
    max_tokens,
    message_choice,
    stop_sequences,
    text_of,
    tool_arguments,
    tool_call,
    tool_choice,
)
from extproc.providers.sse import SseEvent, event_object

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; this is sent when the client set no limit
MAX_TEMPERATURE = 1.0  # Anthropic accepts 0..1 where OpenAI accepts 0..2: higher values are clamped

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_TOOL_CHOICE = {"auto": "auto", "none": "none", "required": "any"}
_PROMPT_USAGE = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
# The HTTP status each error type stands for, to classify `error` events inside a stream.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def _block(part: dict[str, Any]) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": part["text"]} if part.get("text") else None
    if kind == "image_url":
        url = image_url(part)
        inline = data_url(url)
        source = (
            {"type": "base64", "media_type": inline[0], "data": inline[1]} if inline else {"type": "url", "url": url}
        )
        return {"type": "image", "source": source}
    raise TranslationError(f"content parts of type {kind!r} are not supported by Anthropic")


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [block for part in content_parts(content) if (block := _block(part))]


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": tool_arguments(call)}


def _messages(messages: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, Anthropic messages): system prompts hoisted, same-role turns merged."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            if text := text_of(content):
                system.append(text)
        elif role == "user":
            append_turn(turns, "user", "content", _blocks(content))
        elif role == "assistant":
            uses = [_tool_use(call) for call in message.get("tool_calls") or []]
            append_turn(turns, "assistant", "content", _blocks(content) + uses)
        elif role == "tool":
            result = {"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": text_of(content)}
            append_turn(turns, "user", "content", [result])
        else:
            raise TranslationError(f"messages with role {role!r} are not supported by Anthropic")
    return system, turns


def _tool(function: dict[str, Any]) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        tool["description"] = function["description"]
    tool["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    return tool


def _usage(usage: dict[str, Any]) -> Usage:
    """Anthropic counts cache writes and reads apart from `input_tokens`; OpenAI's prompt includes them."""
    prompt = sum(usage.get(key) or 0 for key in _PROMPT_USAGE)
    return Usage(prompt_tokens=prompt, completion_tokens=usage.get("output_tokens") or 0)


class _Stream(ChunkStream):
    """Anthropic's named events to chat.completion.chunk events."""

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(model, include_usage)
        self._counts: dict[str, int] = {}  # latest usage fields; message_delta's are cumulative
        self._tools: dict[int, int] = {}  # content block index -> tool_calls index
        self._finish = "stop"

    def _translate(self, event: SseEvent) -> bytes:
        data = event_object(event)
        kind = data.get("type") or event.event
        if kind == "message_start":
            message = data.get("message") or {}
            self._id = message.get("id") or self._id
            self._model = message.get("model") or self._model
            self._count(message.get("usage"))
            return self._chunk(0, {"role": "assistant", "content": ""})
        if kind == "content_block_start":
            return self._block_start(data.get("index"), data.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(data.get("index"), data.get("delta") or {})
        if kind == "message_delta":
            self._finish = _FINISH.get((data.get("delta") or {}).get("stop_reason"), "stop")
            self._count(data.get("usage"))
            return b""
        if kind == "message_stop":
            return self._chunk(0, {}, self._finish) + self._close()
        if kind == "error":
            error = data.get("error") or {}
            error_type = text_field(error, "type")
            status = client_status(_ERROR_STATUS.get(error_type or "", 500))
            return self._fail(status, text_field(error, "message") or "the upstream stream failed", error_type)
        return b""  # ping, content_block_stop, and event types Anthropic may add

    def _count(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._counts.update({key: value for key, value in usage.items() if isinstance(value, int)})
            self.usage = _usage(self._counts)

    def _block_start(self, index: Any, block: dict[str, Any]) -> bytes:
        if block.get("type") == "tool_use":
            position = self._tools[index] = len(self._tools)
            function = {"name": block.get("name", ""), "arguments": ""}  # input follows as input_json_delta
            call = {"index": position, "id": block.get("id", ""), "type": "function", "function": function}
            return self._chunk(0, {"tool_calls": [call]})
        if block.get("type") == "text" and block.get("text"):
            return self._chunk(0, {"content": block["text"]})
        return b""  # thinking blocks are not part of the OpenAI answer

    def _block_delta(self, index: Any, delta: dict[str, Any]) -> bytes:
        if delta.get("type") == "text_delta":
            return self._chunk(0, {"content": delta.get("text", "")})
        if delta.get("type") == "input_json_delta" and delta.get("partial_json") and index in self._tools:
            fragment = {"index": self._tools[index], "function": {"arguments": delta["partial_json"]}}
            return self._chunk(0, {"tool_calls": [fragment]})
        return b""


class AnthropicTranslator:
    """OpenAI chat completions to Anthropic Messages."""

    api = "anthropic"

    def build_request(self, body: dict[str, Any], endpoint: Endpoint) -> UpstreamRequest:
        system, messages = _messages(body.get("messages") or [])
        payload: dict[str, Any] = {
            "model": endpoint.model,
            "messages": messages,
            "max_tokens": max_tokens(body) or DEFAULT_MAX_TOKENS,
        }
        if system:
            payload["system"] = "\n\n".join(system)
        if stop := stop_sequences(body):
            payload["stop_sequences"] = stop
        if body.get("temperature") is not None:
            payload["temperature"] = min(body["temperature"], MAX_TEMPERATURE)
        if body.get("top_p") is not None:
            payload["top_p"] = body["top_p"]
        if tools := function_tools(body):
            payload["tools"] = [_tool(function) for function in tools]
        if choice := tool_choice(body):
            mode, name = choice
            payload["tool_choice"] = {"type": "tool", "name": name} if name else {"type": _TOOL_CHOICE[mode]}
        if body.get("stream"):
            payload["stream"] = True
        headers = [("content-type", "application/json"), ("anthropic-version", ANTHROPIC_VERSION)]
        if endpoint.api_key:
            headers.append(("x-api-key", endpoint.api_key))
        return UpstreamRequest(
            path=f"{endpoint.base_path}/v1/messages", headers=tuple(headers), body=orjson.dumps(payload)
        )

    def translate_response(self, status: int, body: bytes, model: str) -> TranslatedResponse:
        if status >= 400:
            error = provider_error(status, body)
            return error_response(status, error["message"], code=text_field(error, "type"))
        data = parse_object(body)
        if data is None:
            return malformed_response()
        content = data.get("content") or []
        text = "".join(block.get("text", "") for block in content if block.get("type") == "text")
        calls = [
            tool_call(block["id"], block["name"], block.get("input") or {})
            for block in content
            if block.get("type") == "tool_use"
        ]
        finish = _FINISH.get(data.get("stop_reason"), "stop")
        usage = _usage(data["usage"]) if isinstance(data.get("usage"), dict) else None
        return completion(
            data.get("id") or completion_id(),
            int(time.time()),
            data.get("model") or model,
            [message_choice(0, text, calls, finish)],
            usage,
        )

    def stream_translator(self, model: str, include_usage: bool) -> _Stream:
        return _Stream(model, include_usage)
