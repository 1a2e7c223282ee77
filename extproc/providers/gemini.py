"""OpenAI chat completions to the Gemini API (`models/{model}:generateContent`, `:streamGenerateContent`)."""

from __future__ import annotations

import itertools
import math
import mimetypes
import time
from collections.abc import Iterator
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

API_VERSION = "v1beta"
DEFAULT_IMAGE_TYPE = "image/jpeg"  # for an image URL whose extension names no type

_SCALARS = {"temperature": "temperature", "top_p": "topP", "n": "candidateCount"}
_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)


def _part(part: dict[str, Any]) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind == "text":
        return {"text": part["text"]} if part.get("text") else None
    if kind == "image_url":
        url = image_url(part)
        if inline := data_url(url):
            return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
        return {"fileData": {"mimeType": mimetypes.guess_type(url)[0] or DEFAULT_IMAGE_TYPE, "fileUri": url}}
    raise TranslationError(f"content parts of type {kind!r} are not supported by Gemini")


def _parts(content: Any) -> list[dict[str, Any]]:
    return [converted for part in content_parts(content) if (converted := _part(part))]


def _function_response(name: str, output: str) -> dict[str, Any]:
    """A tool's output; Gemini wants an object, so a non-object output is wrapped as `{"output": ...}`."""
    return {"functionResponse": {"name": name, "response": parse_object(output.encode()) or {"output": output}}}


def _contents(messages: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, Gemini contents): roles user/model, tool results as user functionResponse parts."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, which Gemini matches results by
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            if text := text_of(content):
                system.append(text)
        elif role == "user":
            append_turn(turns, "user", "parts", _parts(content))
        elif role == "assistant":
            calls = []
            for call in message.get("tool_calls") or []:
                names[call["id"]] = call["function"]["name"]
                calls.append({"functionCall": {"name": call["function"]["name"], "args": tool_arguments(call)}})
            append_turn(turns, "model", "parts", _parts(content) + calls)
        elif role == "tool":
            name = names.get(message.get("tool_call_id", ""))
            if name is None:
                raise TranslationError(f"tool message {message.get('tool_call_id')!r} answers no earlier tool call")
            append_turn(turns, "user", "parts", [_function_response(name, text_of(content))])
        else:
            raise TranslationError(f"messages with role {role!r} are not supported by Gemini")
    return system, turns


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config = {gemini: body[openai] for openai, gemini in _SCALARS.items() if body.get(openai) is not None}
    if limit := max_tokens(body):
        config["maxOutputTokens"] = limit
    if stop := stop_sequences(body):
        config["stopSequences"] = stop
    response_format = body.get("response_format") or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    schema = (response_format.get("json_schema") or {}).get("schema")
    if response_format.get("type") == "json_schema" and schema:
        config["responseJsonSchema"] = schema
    return config


def _declaration(function: dict[str, Any]) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        declaration["description"] = function["description"]
    if function.get("parameters"):
        declaration["parametersJsonSchema"] = function["parameters"]
    return declaration


def _tool_config(mode: str, name: str | None) -> dict[str, Any]:
    if name:
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return {"functionCallingConfig": {"mode": _MODES[mode]}}


def _candidates(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The response's candidates; a blocked prompt has none and reads as one filtered candidate."""
    if data.get("candidates"):
        return data["candidates"]
    blocked = (data.get("promptFeedback") or {}).get("blockReason")
    return [{"index": 0, "finishReason": "SAFETY"}] if blocked else []


def _text(parts: list[dict[str, Any]]) -> str:
    return "".join(part["text"] for part in parts if "text" in part and not part.get("thought"))


def _tool_calls(parts: list[dict[str, Any]], ids: Iterator[int]) -> list[dict[str, Any]]:
    """OpenAI tool calls for the functionCall parts; Gemini sends no ids, so they are numbered `call_<n>`."""
    calls = (part["functionCall"] for part in parts if "functionCall" in part)
    return [tool_call(call.get("id") or f"call_{next(ids)}", call["name"], call.get("args") or {}) for call in calls]


def _finish_reason(reason: str | None, called: bool) -> str:
    if called:
        return "tool_calls"
    if reason == "MAX_TOKENS":
        return "length"
    return "content_filter" if reason in _FILTERED else "stop"


def _usage(metadata: Any) -> Usage | None:
    """Thinking tokens are billed as output, so they count as completion tokens."""
    if not isinstance(metadata, dict):
        return None
    completion_tokens = (metadata.get("candidatesTokenCount") or 0) + (metadata.get("thoughtsTokenCount") or 0)
    return Usage(prompt_tokens=metadata.get("promptTokenCount") or 0, completion_tokens=completion_tokens)


def _retry_after(error: dict[str, Any]) -> str | None:
    """Seconds from a google.rpc.RetryInfo detail (`"retryDelay": "46.5s"`), Gemini's retry-after."""
    for detail in error.get("details") or []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return str(math.ceil(float(delay[:-1])))
            except ValueError:
                return None
    return None


class _Stream(ChunkStream):
    """Each `data:` event is a partial GenerateContentResponse; the stream ends after a finishReason."""

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(model, include_usage)
        self._ids = itertools.count()
        self._tool_counts: dict[int, int] = {}  # candidate index -> tool calls so far
        self._started: set[int] = set()
        self._finished = False

    def _translate(self, event: SseEvent) -> bytes:
        data = event_object(event)
        if isinstance(data.get("error"), dict):
            error = data["error"]
            status = client_status(error["code"] if isinstance(error.get("code"), int) else 500)
            message = text_field(error, "message") or "the upstream stream failed"
            return self._fail(status, message, text_field(error, "status"))
        self._id = data.get("responseId") or self._id
        self._model = data.get("modelVersion") or self._model
        self.usage = _usage(data.get("usageMetadata")) or self.usage
        return b"".join(self._candidate(candidate) for candidate in _candidates(data))

    def _candidate(self, candidate: dict[str, Any]) -> bytes:
        index = candidate.get("index", 0)
        parts = (candidate.get("content") or {}).get("parts") or []
        delta: dict[str, Any] = {}
        if index not in self._started:
            self._started.add(index)
            delta["role"] = "assistant"
        if text := _text(parts):
            delta["content"] = text
        if calls := _tool_calls(parts, self._ids):
            first = self._tool_counts.get(index, 0)
            delta["tool_calls"] = [{"index": first + n, **call} for n, call in enumerate(calls)]
            self._tool_counts[index] = first + len(calls)
        reason = candidate.get("finishReason")
        if reason:
            self._finished = True
        finish = _finish_reason(reason, index in self._tool_counts) if reason else None
        return self._chunk(index, delta, finish) if delta or finish else b""

    def _end(self) -> bytes:
        return self._close() if self._finished else super()._end()


class GeminiTranslator:
    """OpenAI chat completions to Gemini generateContent."""

    api = "gemini"

    def build_request(self, body: dict[str, Any], endpoint: Endpoint) -> UpstreamRequest:
        system, contents = _contents(body.get("messages") or [])
        payload: dict[str, Any] = {"contents": contents}
        if system:
            payload["systemInstruction"] = {"parts": [{"text": text} for text in system]}
        if config := _generation_config(body):
            payload["generationConfig"] = config
        if functions := function_tools(body):
            payload["tools"] = [{"functionDeclarations": [_declaration(function) for function in functions]}]
        if choice := tool_choice(body):
            payload["toolConfig"] = _tool_config(*choice)
        model = endpoint.model.removeprefix("models/")
        action = "streamGenerateContent?alt=sse" if body.get("stream") else "generateContent"
        headers = [("content-type", "application/json")]
        if endpoint.api_key:
            headers.append(("x-goog-api-key", endpoint.api_key))
        return UpstreamRequest(
            path=f"{endpoint.base_path}/{API_VERSION}/models/{model}:{action}",
            headers=tuple(headers),
            body=orjson.dumps(payload),
        )

    def translate_response(self, status: int, body: bytes, model: str) -> TranslatedResponse:
        if status >= 400:
            error = provider_error(status, body)
            return error_response(
                status, error["message"], code=text_field(error, "status"), retry_after=_retry_after(error)
            )
        data = parse_object(body)
        if data is None:
            return malformed_response()
        ids = itertools.count()
        choices = []
        for candidate in _candidates(data):
            parts = (candidate.get("content") or {}).get("parts") or []
            calls = _tool_calls(parts, ids)
            finish = _finish_reason(candidate.get("finishReason"), bool(calls))
            choices.append(message_choice(candidate.get("index", 0), _text(parts), calls, finish))
        return completion(
            data.get("responseId") or completion_id(),
            int(time.time()),
            data.get("modelVersion") or model,
            choices,
            _usage(data.get("usageMetadata")),
        )

    def stream_translator(self, model: str, include_usage: bool) -> _Stream:
        return _Stream(model, include_usage)
