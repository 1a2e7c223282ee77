"""OpenAI chat completions: the pass-through translator for OpenAI-compatible targets (OpenAI, llama.cpp
server, any compatible base URL), and the readers and builders of OpenAI objects the other translators share.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson

from extproc.providers.base import Endpoint, TranslatedResponse, UpstreamRequest, Usage
from extproc.providers.errors import (
    TranslationError,
    error_response,
    malformed_response,
    parse_object,
    provider_error,
    text_field,
)
from extproc.providers.sse import SseEvent, SseTranslator, encode, event_object

_DATA_URL = re.compile(r"data:(?P<mime>[^;,]+)(?:;[^,;]+)*;base64,(?P<data>.*)", re.DOTALL)


# --- reading the client's request -------------------------------------------------------------------


def content_parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as a list of parts (a plain string is one text part)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


def text_of(content: Any) -> str:
    """The text of a message's content, its text parts joined by newlines."""
    return "\n".join(p["text"] for p in content_parts(content) if p.get("type") == "text" and p.get("text"))


def image_url(part: dict[str, Any]) -> str:
    """The URL of an `image_url` content part."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise TranslationError("an image_url content part has no url")
    return url


def data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a base64 `data:` URL, or None for any other URL."""
    match = _DATA_URL.fullmatch(url)
    return (match["mime"], match["data"]) if match else None


def max_tokens(body: dict[str, Any]) -> int | None:
    """The output-token limit the client set, if any (`max_completion_tokens` wins over `max_tokens`)."""
    return body.get("max_completion_tokens") or body.get("max_tokens")


def stop_sequences(body: dict[str, Any]) -> list[str] | None:
    """`stop` as a list (OpenAI allows a single string or a list)."""
    stop = body.get("stop")
    if isinstance(stop, str):
        return [stop]
    return list(stop) if stop else None


def function_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The `function` objects of the client's tools."""
    functions = []
    for tool in body.get("tools") or []:
        if tool.get("type") != "function":
            raise TranslationError(f"tools of type {tool.get('type')!r} are not supported by this target")
        functions.append(tool["function"])
    return functions


def tool_choice(body: dict[str, Any]) -> tuple[str, str | None] | None:
    """`tool_choice` as (mode, function name): ("auto"|"none"|"required", None) or ("function", name)."""
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return choice, None
    if isinstance(choice, dict) and choice.get("type") == "function":
        return "function", choice["function"]["name"]
    raise TranslationError(f"tool_choice {choice!r} is not supported by this target")


def tool_arguments(call: dict[str, Any]) -> dict[str, Any]:
    """The decoded JSON `arguments` of an assistant tool call."""
    try:
        arguments = orjson.loads(call["function"].get("arguments") or "{}")
    except orjson.JSONDecodeError as exc:
        raise TranslationError(f"tool call {call.get('id')!r} has arguments that are not JSON") from exc
    if not isinstance(arguments, dict):
        raise TranslationError(f"tool call {call.get('id')!r} has arguments that are not a JSON object")
    return arguments


def append_turn(turns: list[dict[str, Any]], role: str, key: str, items: list[Any]) -> None:
    """Add `items` as a turn of `role`, merged into the previous turn when it has the same role."""
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


# --- building OpenAI responses ----------------------------------------------------------------------


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage_object(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def tool_call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    """An assistant `tool_calls` entry; `arguments` is serialised to the JSON string OpenAI sends."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
    }


def message_choice(index: int, text: str, tool_calls: list[dict[str, Any]], finish_reason: str) -> dict[str, Any]:
    """One `choices` entry of a chat.completion (content is null when the answer is only tool calls)."""
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if tool_calls else "")}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish_reason}


def completion(
    response_id: str, created: int, model: str, choices: list[dict[str, Any]], usage: Usage | None
) -> TranslatedResponse:
    """A successful chat.completion response."""
    body: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage_object(usage)
    return TranslatedResponse(status=200, body=orjson.dumps(body), usage=usage)


class ChunkStream(SseTranslator):
    """A stream translator that writes its own chat.completion.chunk events (for non-OpenAI targets)."""

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(include_usage)
        self._id = completion_id()
        self._created = int(time.time())
        self._model = model

    def _chunk(self, index: int, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._payload([choice])

    def _close(self) -> bytes:
        """The usage chunk when the client asked for it, then `data: [DONE]`."""
        usage = self._payload([], self.usage) if self._include_usage and self.usage else b""
        return usage + self._done()

    def _payload(self, choices: list[dict[str, Any]], usage: Usage | None = None) -> bytes:
        payload: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }
        if usage is not None:
            payload["usage"] = usage_object(usage)
        return encode(payload)


# --- the pass-through translator --------------------------------------------------------------------


def _usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion_tokens, int):
        return Usage(prompt, completion_tokens)
    return None


class _Stream(SseTranslator):
    """Passes chunks through, captures usage, drops the usage-only chunk the client did not ask for."""

    def _translate(self, event: SseEvent) -> bytes:
        if event.data == "[DONE]":
            return self._done()
        payload = event_object(event)
        if "error" in payload:
            return self._stop(payload)
        usage = _usage(payload.get("usage"))
        if usage is not None:
            self.usage = usage
            if payload.get("choices") == [] and not self._include_usage:
                return b""
        return encode(payload)


class OpenAICompatTranslator:
    """OpenAI chat completions to an OpenAI-compatible target: the same wire format, another model."""

    api = "openai"

    def build_request(self, body: dict[str, Any], endpoint: Endpoint) -> UpstreamRequest:
        upstream = {**body, "model": endpoint.model}
        if body.get("stream"):
            upstream["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        headers = [("content-type", "application/json")]
        if endpoint.api_key:
            headers.append(("authorization", f"Bearer {endpoint.api_key}"))
        return UpstreamRequest(
            path=f"{endpoint.base_path}/chat/completions", headers=tuple(headers), body=orjson.dumps(upstream)
        )

    def translate_response(self, status: int, body: bytes, model: str) -> TranslatedResponse:
        if status >= 400:
            error = provider_error(status, body)
            return error_response(
                status,
                error["message"],
                type=text_field(error, "type"),
                code=text_field(error, "code"),
                param=text_field(error, "param"),
            )
        data = parse_object(body)
        if data is None:
            return malformed_response()
        return TranslatedResponse(status=status, body=body, usage=_usage(data.get("usage")))

    def stream_translator(self, model: str, include_usage: bool) -> _Stream:
        return _Stream(include_usage)
