"""A stand-in for the OpenAI chat completions API (also what llama.cpp's server speaks)."""

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

CREATED = 1_700_000_000
_TYPES = {429: "requests"}
_ROLES = {"system", "developer", "user", "assistant", "tool"}
_PARAMETERS = frozenset(
    [
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "n",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "seed",
        "user",
        "logprobs",
        "top_logprobs",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "metadata",
        "store",
        "reasoning_effort",
        "modalities",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
        "verbosity",
    ]
)
_FINISH = {"end": "stop", "stop_sequence": "stop", "length": "length"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content or [] if part.get("type") == "text")


class OpenAIStandIn(StandIn):
    """POST /v1/chat/completions with Bearer auth, plain and streamed, with tool calls."""

    sdk_path = "/v1"

    def __init__(self, api_key: str = "test-key") -> None:
        super().__init__(api_key)
        self._ids = itertools.count(1)

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", "/v1/chat/completions", self._chat)]

    def error(self, status: int, message: str, *, code: str | None = None, param: str | None = None) -> Reply:
        kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return json_reply(status, {"error": {"message": message, "type": kind, "param": param, "code": code}})

    def authenticate(self, request: web.Request) -> Reply | None:
        auth = request.headers.get("authorization", "")
        if not auth:
            return self.error(401, "You didn't provide an API key.")
        if auth != f"Bearer {self.api_key}":
            return self.error(401, "Incorrect API key provided.", code="invalid_api_key")
        return None

    def _invalid(self, body: dict[str, Any]) -> Reply | None:
        if unknown := sorted(set(body) - _PARAMETERS):
            return self.error(400, f"Unrecognized request argument supplied: {unknown[0]}")
        if not isinstance(body.get("model"), str):
            return self.error(400, "you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.error(400, "[] is too short - 'messages'", param="messages")
        if "stream_options" in body and not body.get("stream"):
            return self.error(
                400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream"
            )
        pending: set[str] = set()
        for number, message in enumerate(messages):
            role = message.get("role")
            if role not in _ROLES:
                return self.error(400, f"Invalid value: '{role}'.", param=f"messages.[{number}].role")
            if role == "tool" and message.get("tool_call_id") not in pending:
                return self.error(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.",
                    param=f"messages.[{number}].role",
                )
            if role == "assistant":
                pending = {call["id"] for call in message.get("tool_calls") or []}
        return None

    async def _chat(self, request: web.Request, body: Any) -> Reply | StreamReply:
        if not isinstance(body, dict):
            return self.error(400, "the request body must be a JSON object")
        if (invalid := self._invalid(body)) is not None:
            return invalid
        messages = body["messages"]
        last = messages[-1]
        prompt = _text(last.get("content"))
        prompt_tokens = count_tokens([_text(message.get("content")) for message in messages])
        number = next(self._ids)
        response_id = f"chatcmpl-standin-{number}"
        tools = [tool["function"] for tool in body.get("tools") or []]
        choice = body.get("tool_choice")
        if tools and last["role"] == "user" and choice != "none":
            named = choice["function"]["name"] if isinstance(choice, dict) else tools[0]["name"]
            function = next(tool for tool in tools if tool["name"] == named)
            call = {"id": f"call_standin_{number}", "name": named}
            arguments = tool_input(function.get("parameters"), prompt)
            return self._tool_call(body, response_id, prompt_tokens, call, arguments)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        stop = body.get("stop")
        answer = complete(prompt, limit, [stop] if isinstance(stop, str) else stop or [])
        if body.get("stream"):
            return self._text_stream(body, response_id, prompt_tokens, answer)
        message = {"role": "assistant", "content": answer.text, "refusal": None, "annotations": []}
        choices = [
            {"index": n, "message": message, "logprobs": None, "finish_reason": _FINISH[answer.stop]}
            for n in range(body.get("n") or 1)
        ]
        return json_reply(200, self._completion(body, response_id, choices, prompt_tokens, answer.output_tokens))

    def _tool_call(
        self, body: dict[str, Any], response_id: str, prompt_tokens: int, call: dict[str, str], arguments: Any
    ) -> Reply | StreamReply:
        output_tokens = count_tokens([orjson.dumps(arguments).decode()])
        if not body.get("stream"):
            function = {"name": call["name"], "arguments": orjson.dumps(arguments).decode()}
            message = {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "annotations": [],
                "tool_calls": [{"id": call["id"], "type": "function", "function": function}],
            }
            choices = [{"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}]
            return json_reply(200, self._completion(body, response_id, choices, prompt_tokens, output_tokens))
        start = {"index": 0, "id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": ""}}
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": None, "tool_calls": [start]}]
        deltas += [
            {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]} for fragment in split_json(arguments)
        ]
        return self._stream(body, response_id, deltas, "tool_calls", prompt_tokens, output_tokens)

    def _text_stream(
        self, body: dict[str, Any], response_id: str, prompt_tokens: int, answer: Completion
    ) -> StreamReply:
        deltas = [{"role": "assistant", "content": "", "refusal": None}]
        deltas += [{"content": piece} for piece in answer.pieces]
        return self._stream(body, response_id, deltas, _FINISH[answer.stop], prompt_tokens, answer.output_tokens)

    def _stream(
        self,
        body: dict[str, Any],
        response_id: str,
        deltas: list[dict[str, Any]],
        finish: str,
        prompt_tokens: int,
        output_tokens: int,
    ) -> StreamReply:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        head = {"id": response_id, "object": "chat.completion.chunk", "created": CREATED, "model": body["model"]}
        head |= {"service_tier": "default", "system_fingerprint": "fp_standin"}
        tail = {"usage": None} if include_usage else {}
        choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None} for delta in deltas]
        choices.append({"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish})
        chunks = [{**head, "choices": [choice], **tail} for choice in choices]
        if include_usage:
            chunks.append({**head, "choices": [], "usage": _usage(prompt_tokens, output_tokens)})
        return StreamReply([b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks] + [b"data: [DONE]\n\n"])

    def _completion(
        self,
        body: dict[str, Any],
        response_id: str,
        choices: list[dict[str, Any]],
        prompt_tokens: int,
        output_tokens: int,
    ) -> dict[str, Any]:
        return {
            "id": response_id,
            "object": "chat.completion",
            "created": CREATED,
            "model": body["model"],
            "choices": choices,
            "usage": _usage(prompt_tokens, output_tokens),
            "service_tier": "default",
            "system_fingerprint": "fp_standin",
        }


def _usage(prompt_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": prompt_tokens + output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
