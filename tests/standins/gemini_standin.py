"""A stand-in for the Gemini API (`{v1beta,v1}/models/{model}:generateContent` and `:streamGenerateContent`)."""

from __future__ import annotations

import itertools
import re
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
    tool_input,
)

API_VERSIONS = ("v1beta", "v1")  # the SDK's default is v1; the REST reference's examples use v1beta
_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# Fields the proto accepts (JSON may spell them in camelCase or snake_case); any other field is a 400.
_REQUEST = frozenset(
    [
        "contents",
        "tools",
        "toolConfig",
        "safetySettings",
        "systemInstruction",
        "generationConfig",
        "cachedContent",
        "model",
    ]
)
_CONFIG = frozenset(
    [
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "imageConfig",
        "mediaResolution",
    ]
)
_DATA = frozenset(
    ["text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult"]
)
_PART = _DATA | {"thought", "thoughtSignature", "videoMetadata", "partMetadata"}
_DECLARATION = frozenset(
    ["name", "description", "parameters", "parametersJsonSchema", "response", "responseJsonSchema", "behavior"]
)
_OPAQUE = {"parameters", "parametersJsonSchema", "response", "responseJsonSchema", "responseSchema", "args"}
_FINISH = {"end": "STOP", "stop_sequence": "STOP", "length": "MAX_TOKENS"}


def _camel_case(value: Any) -> Any:
    """The request with every proto field name in camelCase; free-form values (schemas, args) untouched."""
    if isinstance(value, list):
        return [_camel_case(item) for item in value]
    if not isinstance(value, dict):
        return value
    renamed = {re.sub(r"_([a-z])", lambda match: match[1].upper(), name): item for name, item in value.items()}
    return {name: item if name in _OPAQUE else _camel_case(item) for name, item in renamed.items()}


def _unknown(value: Any, known: set[str], where: str) -> str | None:
    """The proto's complaint about the first field of `value` that `known` lacks."""
    for name in value if isinstance(value, dict) else ():
        if name not in known:
            return f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field."
    return None


def _text(parts: list[dict[str, Any]]) -> str:
    """The text of a turn, function responses included (as JSON)."""
    texts = [part["text"] for part in parts if "text" in part]
    texts += [
        orjson.dumps(part["functionResponse"]["response"]).decode() for part in parts if "functionResponse" in part
    ]
    return " ".join(texts)


class GeminiStandIn(StandIn):
    """generateContent and streamGenerateContent (alt=sse, or a JSON array without it), x-goog-api-key."""

    def __init__(self, api_key: str = "test-key", thoughts_tokens: int = 0) -> None:
        super().__init__(api_key)
        self.thoughts_tokens = thoughts_tokens  # reported as thinking, the way 2.5 models do
        self._ids = itertools.count(1)

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", f"/{version}/models/{{target}}", self._generate) for version in API_VERSIONS]

    def error(self, status: int, message: str, details: list[dict[str, Any]] | None = None) -> Reply:
        error: dict[str, Any] = {"code": status, "message": message, "status": _STATUSES.get(status, "UNKNOWN")}
        if details:
            error["details"] = details
        return json_reply(status, {"error": error})

    def failure(self, status: int, retry_after: str | None) -> Reply:
        """Gemini says when to retry in the body, as a google.rpc.RetryInfo detail."""
        info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"}
        return self.error(status, "scripted failure", [info] if retry_after else None)

    def authenticate(self, request: web.Request) -> Reply | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return self.error(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if key != self.api_key:
            reason = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
            return self.error(400, "API key not valid. Please pass a valid API key.", [reason])
        return None

    def _invalid(self, body: dict[str, Any]) -> Reply | None:
        if complaint := self._unknown_field(body):
            return self.error(400, complaint)
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return self.error(400, "* GenerateContentRequest.contents: contents is not specified\n")
        calls = 0  # functionCall parts of the previous model turn, which this turn must answer
        for number, content in enumerate(contents):
            if complaint := self._bad_turn(number, content, calls):
                return self.error(400, complaint)
            parts = content["parts"]
            calls = sum("functionCall" in part for part in parts) if content.get("role") == "model" else 0
        return None

    @staticmethod
    def _unknown_field(body: dict[str, Any]) -> str | None:
        if complaint := _unknown(body, _REQUEST, ""):
            return complaint
        if complaint := _unknown(body.get("generationConfig"), _CONFIG, "generation_config"):
            return complaint
        for tool in body.get("tools") or []:
            for declaration in tool.get("functionDeclarations") or []:
                if complaint := _unknown(declaration, _DECLARATION, "tools[0].function_declarations[0]"):
                    return complaint
        return None

    @staticmethod
    def _bad_turn(number: int, content: dict[str, Any], calls: int) -> str | None:
        where = f"* GenerateContentRequest.contents[{number}].parts"
        if content.get("role", "user") not in ("user", "model"):
            return "Please use a valid role: user, model."
        parts = content.get("parts")
        if not parts:
            return f"{where}: contents.parts must not be empty.\n"
        for part in parts:
            if complaint := _unknown(part, _PART, f"contents[{number}].parts[0]"):
                return complaint
            if len(set(part) & _DATA) != 1:
                return f"{where}: a part must hold exactly one kind of data\n"
            response = part.get("functionResponse")
            if response is not None and not (response.get("name") and isinstance(response.get("response"), dict)):
                return f"{where}[0].function_response.name: Name cannot be empty.\n"
        responses = sum("functionResponse" in part for part in parts)
        if responses and not calls:
            return "Please ensure that function response turn comes immediately after a function call turn."
        if calls and responses != calls:
            return (
                "Please ensure that the number of function response parts is equal to the number of function "
                "call parts of the function call turn."
            )
        return None

    async def _generate(self, request: web.Request, body: Any) -> Reply | StreamReply:
        model, _, action = request.match_info["target"].partition(":")
        if action not in ("generateContent", "streamGenerateContent"):
            return self.error(404, f"The requested URL {request.path} was not found.")
        if not isinstance(body, dict):
            return self.error(400, "Invalid JSON payload received.")
        body = _camel_case(body)
        if (invalid := self._invalid(body)) is not None:
            return invalid
        contents = body["contents"]
        config = body.get("generationConfig") or {}
        system = (body.get("systemInstruction") or {}).get("parts") or []
        prompt = _text(contents[-1]["parts"])
        prompt_tokens = count_tokens([_text(content["parts"]) for content in contents] + [_text(system)])
        response_id = f"standin-{next(self._ids)}"
        stream = action == "streamGenerateContent"
        head = {"modelVersion": model, "responseId": response_id}
        if call := self._function_call(body, contents[-1], prompt):
            usage = self._usage(prompt_tokens, count_tokens([orjson.dumps(call["args"]).decode()]))
            candidate = {"content": {"parts": [{"functionCall": call}], "role": "model"}, "finishReason": "STOP"}
            chunks = [{"candidates": [{**candidate, "index": 0}], "usageMetadata": usage, **head}]
            return self._stream_reply(chunks, request) if stream else json_reply(200, chunks[0])
        answer = complete(prompt, config.get("maxOutputTokens"), config.get("stopSequences") or [])
        if stream:
            return self._stream_reply(self._chunks(answer, prompt_tokens, head), request)
        candidates = [
            {
                "content": {"parts": [{"text": answer.text}], "role": "model"},
                "finishReason": _FINISH[answer.stop],
                "index": index,
            }
            for index in range(config.get("candidateCount") or 1)
        ]
        usage = self._usage(prompt_tokens, answer.output_tokens * len(candidates))
        return json_reply(200, {"candidates": candidates, "usageMetadata": usage, **head})

    def _function_call(self, body: dict[str, Any], last: dict[str, Any], prompt: str) -> dict[str, Any] | None:
        declarations = [d for tool in body.get("tools") or [] for d in tool.get("functionDeclarations") or []]
        calling = ((body.get("toolConfig") or {}).get("functionCallingConfig")) or {}
        asks = last.get("role", "user") == "user" and not any("functionResponse" in p for p in last["parts"])
        if not declarations or not asks or calling.get("mode") == "NONE":
            return None
        name = (calling.get("allowedFunctionNames") or [declarations[0]["name"]])[0]
        declaration = next(d for d in declarations if d["name"] == name)
        schema = declaration.get("parametersJsonSchema") or declaration.get("parameters")
        return {"name": name, "args": tool_input(schema, prompt)}

    def _chunks(self, answer: Completion, prompt_tokens: int, head: dict[str, Any]) -> list[dict[str, Any]]:
        pieces = answer.pieces or [""]
        chunks = []
        for number, piece in enumerate(pieces, 1):
            candidate: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
            if number == len(pieces):
                candidate["finishReason"] = _FINISH[answer.stop]
            usage = self._usage(prompt_tokens, min(number, answer.output_tokens))
            chunks.append({"candidates": [candidate], "usageMetadata": usage, **head})
        return chunks

    def _usage(self, prompt_tokens: int, output_tokens: int) -> dict[str, Any]:
        usage = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens + self.thoughts_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        }
        if self.thoughts_tokens:
            usage["thoughtsTokenCount"] = self.thoughts_tokens
        return usage

    def _stream_reply(self, chunks: list[dict[str, Any]], request: web.Request) -> StreamReply:
        """Server-sent events with CRLF line ends for alt=sse; otherwise a JSON array written piece by piece."""
        if request.query.get("alt") == "sse":
            return StreamReply([b"data: " + orjson.dumps(chunk) + b"\r\n\r\n" for chunk in chunks])
        pieces = [orjson.dumps(chunk) for chunk in chunks]
        writes = [b"[" + pieces[0]] + [b",\r\n" + piece for piece in pieces[1:]] + [b"]"]
        return StreamReply(writes, content_type="application/json")
