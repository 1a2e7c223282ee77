"""A stand-in for the Anthropic Messages API (`POST /v1/messages`)."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from aiohttp import web

from tests.standins.base import (
    Completion,
    Handler,
    Reply,
    StandIn,
    StreamReply,
    complete,
    count_tokens,
    json_reply,
    split_json,
    tool_input,
)

VERSIONS = ("2023-06-01", "2026-10-21")
_REMOVED_IN_2026 = ("temperature", "top_p", "top_k")  # by API version 2026-10-21
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_FIELDS = frozenset(
    [
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
    ]
)
_BLOCKS = {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"}
_STOP = {"end": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence"}


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _text(content: Any) -> str:
    """The text of a message, tool results included."""
    texts = [
        _text(block.get("content") or []) if block.get("type") == "tool_result" else block.get("text", "")
        for block in _blocks(content)
        if block.get("type") in ("text", "tool_result")
    ]
    return " ".join(texts)


class AnthropicStandIn(StandIn):
    """POST /v1/messages with x-api-key and anthropic-version, plain and streamed, with tool use."""

    def __init__(self, api_key: str = "test-key") -> None:
        super().__init__(api_key)
        self._ids = itertools.count(1)

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", "/v1/messages", self._messages)]

    def error(self, status: int, message: str) -> Reply:
        kind = _TYPES.get(status, "api_error")
        payload = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_standin"}
        return json_reply(status, payload, {"request-id": "req_standin"})

    def authenticate(self, request: web.Request) -> Reply | None:
        """An API key in x-api-key, or (as SDKs for API version 2026-10-21 send it) as a Bearer token."""
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        key = request.headers.get("x-api-key") or bearer
        if not key:
            return self.error(401, "x-api-key header is required")
        if key != self.api_key:
            return self.error(401, "invalid x-api-key")
        version = request.headers.get("anthropic-version")
        if version not in VERSIONS:
            return self.error(400, f"anthropic-version: {'invalid' if version else 'header is required'}")
        return None

    def _invalid(self, body: dict[str, Any], version: str) -> Reply | None:
        if extra := sorted(set(body) - _FIELDS):
            return self.error(400, f"{extra[0]}: Extra inputs are not permitted")
        if version >= "2026-10-21" and (removed := [name for name in _REMOVED_IN_2026 if name in body]):
            return self.error(400, f"{removed[0]}: this parameter is not supported in API version {version}")
        for required in ("model", "max_tokens", "messages"):
            if required not in body:
                return self.error(400, f"{required}: Field required")
        if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
            return self.error(400, "max_tokens: Input should be a valid integer greater than or equal to 1")
        if not 0 <= body.get("temperature", 0) <= 1:
            return self.error(400, "temperature: range: 0..1")
        for tool in body.get("tools") or []:
            if "name" not in tool or "input_schema" not in tool:
                return self.error(400, "tools.0.input_schema: Field required")
        return self._invalid_messages(body["messages"])

    def _invalid_messages(self, messages: Any) -> Reply | None:
        if not isinstance(messages, list) or not messages:
            return self.error(400, "messages: at least one message is required")
        unanswered: set[str] = set()
        for number, message in enumerate(messages):
            role = message.get("role")
            if role not in ("user", "assistant"):
                return self.error(
                    400,
                    f'messages: Unexpected role "{role}". The Messages API accepts a top-level `system` parameter, '
                    f'not "{role}" as an input message role.',
                )
            blocks = _blocks(message.get("content"))
            if not blocks:
                return self.error(400, f"messages.{number}: all messages must have non-empty content")
            for block in blocks:
                if block.get("type") not in _BLOCKS:
                    return self.error(400, f"messages.{number}.content: unknown block type {block.get('type')!r}")
                if block.get("type") == "text" and not block.get("text"):
                    return self.error(400, "messages: text content blocks must be non-empty")
            answered = {block["tool_use_id"] for block in blocks if block.get("type") == "tool_result"}
            if unanswered - answered:
                return self.error(
                    400,
                    f"messages.{number}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(sorted(unanswered - answered))}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message.",
                )
            unanswered = {block["id"] for block in blocks if block.get("type") == "tool_use"}
        return None

    async def _messages(self, request: web.Request, body: Any) -> Reply | StreamReply:
        if not isinstance(body, dict):
            return self.error(400, "the request body must be a JSON object")
        if (invalid := self._invalid(body, request.headers["anthropic-version"])) is not None:
            return invalid
        messages = body["messages"]
        last = _blocks(messages[-1]["content"])
        prompt = _text(messages[-1]["content"])
        system = body.get("system")
        texts = [_text(message["content"]) for message in messages] + [system if isinstance(system, str) else ""]
        number = next(self._ids)
        message_id = f"msg_standin_{number}"
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {"type": "auto"}
        asks = messages[-1]["role"] == "user" and not any(block.get("type") == "tool_result" for block in last)
        if tools and asks and choice["type"] != "none":
            tool = next(t for t in tools if t["name"] == choice.get("name", tools[0]["name"]))
            call = {"type": "tool_use", "id": f"toolu_standin_{number}", "name": tool["name"]}
            arguments = tool_input(tool["input_schema"], prompt)
            return self._tool_use(body, message_id, count_tokens(texts), call, arguments)
        answer = complete(prompt, body["max_tokens"], body.get("stop_sequences") or [])
        if body.get("stream"):
            return self._text_stream(body, message_id, count_tokens(texts), answer)
        content = [{"type": "text", "text": answer.text}]
        message = self._message(body, message_id, content, count_tokens(texts), answer.output_tokens)
        return json_reply(200, {**message, "stop_reason": _STOP[answer.stop], "stop_sequence": answer.stop_sequence})

    def _message(
        self, body: dict[str, Any], message_id: str, content: list[Any], input_tokens: int, output_tokens: int
    ) -> dict[str, Any]:
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output_tokens,
                "service_tier": "standard",
            },
        }

    def _tool_use(
        self, body: dict[str, Any], message_id: str, input_tokens: int, call: dict[str, Any], arguments: Any
    ) -> Reply | StreamReply:
        output_tokens = count_tokens([orjson.dumps(arguments).decode()])
        if not body.get("stream"):
            message = self._message(body, message_id, [{**call, "input": arguments}], input_tokens, output_tokens)
            return json_reply(200, {**message, "stop_reason": "tool_use"})
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        deltas += [{"type": "input_json_delta", "partial_json": fragment} for fragment in split_json(arguments)]
        block = {**call, "input": {}}
        return self._stream(body, message_id, block, deltas, "tool_use", None, input_tokens, output_tokens)

    def _text_stream(self, body: dict[str, Any], message_id: str, input_tokens: int, answer: Completion) -> StreamReply:
        deltas = [{"type": "text_delta", "text": piece} for piece in answer.pieces]
        block = {"type": "text", "text": ""}
        stop = _STOP[answer.stop]
        return self._stream(
            body, message_id, block, deltas, stop, answer.stop_sequence, input_tokens, answer.output_tokens
        )

    def _stream(
        self,
        body: dict[str, Any],
        message_id: str,
        block: dict[str, Any],
        deltas: list[dict[str, Any]],
        stop_reason: str,
        stop_sequence: str | None,
        input_tokens: int,
        output_tokens: int,
    ) -> StreamReply:
        start = self._message(body, message_id, [], input_tokens, 1)
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
            ("ping", {"type": "ping"}),
        ]
        events += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas]
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": {"output_tokens": output_tokens},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        return StreamReply([f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n" for name, data in events])
