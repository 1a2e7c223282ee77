"""OpenAI chat completions <-> Gemini generateContent: requests, responses, errors and streams, unit and end to end."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.providers.base import Endpoint, Usage
from extproc.providers.errors import TranslationError
from extproc.providers.gemini import GeminiTranslator
from tests.standins.base import exchange
from tests.standins.gemini_standin import GeminiStandIn
from tests.test_translators_common import client_events, frozen_time, run_stream, split_invariance, sse

TRANSLATOR = GeminiTranslator()
ENDPOINT = Endpoint(base_path="", model="gemini-2.5-flash", api_key="goog-target")
MEETING = {
    "name": "schedule_meeting",
    "description": "Schedules a meeting with specified attendees at a given time and date.",
    "parameters": {
        "type": "object",
        "properties": {
            "attendees": {"type": "array", "items": {"type": "string"}},
            "date": {"type": "string"},
            "topic": {"type": "string"},
        },
        "required": ["attendees", "date", "topic"],
    },
}
TOOLS = [{"type": "function", "function": MEETING}]
BOOKING = {"attendees": ["Bob", "Alice"], "date": "2025-03-27", "topic": "Q3 planning"}


def sent(body: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(TRANSLATOR.build_request(body, ENDPOINT).body)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
    }


# --- requests ---------------------------------------------------------------------------------------


def test_request_path_header_and_contents() -> None:
    request = TRANSLATOR.build_request({"messages": [user("Explain how AI works")]}, ENDPOINT)
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert dict(request.headers) == {"content-type": "application/json", "x-goog-api-key": "goog-target"}
    assert orjson.loads(request.body) == {"contents": [{"role": "user", "parts": [{"text": "Explain how AI works"}]}]}


def test_streamed_request_uses_stream_generate_content_with_sse() -> None:
    endpoint = Endpoint("/gw/google", "models/gemini-2.5-pro", None)
    request = TRANSLATOR.build_request({"messages": [user("Hi")], "stream": True}, endpoint)
    assert request.path == "/gw/google/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    assert dict(request.headers) == {"content-type": "application/json"}
    assert "stream" not in orjson.loads(request.body)


def test_system_prompts_become_the_system_instruction_and_roles_alternate() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "You are a cat."},
            {"role": "developer", "content": "Your name is Neko."},
            user("Hello there"),
            user("Are you awake?"),
            {"role": "assistant", "content": "Meow."},
        ]
    }
    assert sent(body) == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hello there"}, {"text": "Are you awake?"}]},
            {"role": "model", "parts": [{"text": "Meow."}]},
        ],
        "systemInstruction": {"parts": [{"text": "You are a cat."}, {"text": "Your name is Neko."}]},
    }


def test_generation_config_maps_every_sampling_field() -> None:
    body = {"messages": [user("Hi")], "max_tokens": 1, "max_completion_tokens": 800, "temperature": 1.2}
    body |= {"top_p": 0.9, "stop": "Title", "n": 2}
    assert sent(body)["generationConfig"] == {
        "temperature": 1.2,
        "topP": 0.9,
        "candidateCount": 2,
        "maxOutputTokens": 800,
        "stopSequences": ["Title"],
    }
    assert sent({"messages": [user("Hi")], "stop": ["a", "b"]})["generationConfig"] == {"stopSequences": ["a", "b"]}
    assert "generationConfig" not in sent({"messages": [user("Hi")]})


def test_json_response_formats_ask_for_json_and_pass_the_schema() -> None:
    schema = {"type": "object", "properties": {"recipe_name": {"type": "string"}}, "required": ["recipe_name"]}
    json_schema = {"type": "json_schema", "json_schema": {"name": "recipe", "schema": schema, "strict": True}}
    assert sent({"messages": [user("Hi")], "response_format": json_schema})["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    json_object = {"messages": [user("Hi")], "response_format": {"type": "json_object"}}
    assert sent(json_object)["generationConfig"] == {"responseMimeType": "application/json"}
    assert "generationConfig" not in sent({"messages": [user("Hi")], "response_format": {"type": "text"}})


def test_tools_become_function_declarations() -> None:
    bare = {"type": "function", "function": {"name": "ping"}}
    meeting = {
        "name": "schedule_meeting",
        "description": MEETING["description"],
        "parametersJsonSchema": MEETING["parameters"],
    }
    tools = sent({"messages": [user("Hi")], "tools": [*TOOLS, bare]})["tools"]
    assert tools == [{"functionDeclarations": [meeting, {"name": "ping"}]}]


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "schedule_meeting"}},
            {"mode": "ANY", "allowedFunctionNames": ["schedule_meeting"]},
        ),
    ],
)
def test_tool_choice_becomes_the_function_calling_config(choice: Any, config: dict[str, Any]) -> None:
    body = {"messages": [user("Hi")], "tools": TOOLS, "tool_choice": choice}
    assert sent(body)["toolConfig"] == {"functionCallingConfig": config}


def test_tool_calls_and_results_become_function_call_and_response_parts() -> None:
    body = {
        "messages": [
            user("Schedule a meeting with Bob and Alice for 03/27/2025 about the Q3 planning."),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    call("call_0", "schedule_meeting", BOOKING),
                    call("call_1", "get_time", {}),
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "10:00"},
            {"role": "tool", "tool_call_id": "call_0", "content": '{"status": "booked"}'},
        ],
        "tools": TOOLS,
    }
    contents = sent(body)["contents"]
    assert contents[1:] == [
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "schedule_meeting", "args": BOOKING}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_time", "response": {"output": "10:00"}}},
                {"functionResponse": {"name": "schedule_meeting", "response": {"status": "booked"}}},
            ],
        },
    ]


def test_images_become_inline_data_or_file_data() -> None:
    content = [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/render?id=7"}},
        {"type": "text", "text": "Caption these."},
    ]
    assert sent({"messages": [{"role": "user", "content": content}]})["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.png"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/render?id=7"}},
        {"text": "Caption these."},
    ]


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "tool", "tool_call_id": "call_9", "content": "orphan result"}],
        [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}],
        [{"role": "function", "name": "f", "content": "x"}],
    ],
)
def test_what_gemini_cannot_express_is_a_translation_error(messages: list[dict[str, Any]]) -> None:
    with pytest.raises(TranslationError):
        TRANSLATOR.build_request({"messages": messages}, ENDPOINT)


# --- responses --------------------------------------------------------------------------------------

RESPONSE = {
    "candidates": [
        {
            "content": {
                "parts": [
                    {"text": "Considering how to explain...", "thought": True},
                    {"text": "AI learns patterns from data."},
                ],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 4,
        "candidatesTokenCount": 652,
        "totalTokenCount": 1234,
        "thoughtsTokenCount": 578,
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "5mJYaNvIDsCvz7IPlJvD-Qg",
}
FUNCTION_CALL = {
    **RESPONSE,
    "candidates": [
        {
            "content": {
                "parts": [
                    {"functionCall": {"name": "schedule_meeting", "args": BOOKING}},
                    {"functionCall": {"name": "get_time", "args": {}}},
                ],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
}


def translated(data: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
    with frozen_time():
        response = TRANSLATOR.translate_response(200, orjson.dumps(data), "gemini-fallback")
    assert response.status == 200
    return orjson.loads(response.body), response.usage


def test_text_response_becomes_a_chat_completion_without_the_thoughts() -> None:
    body, usage = translated(RESPONSE)
    assert body == {
        "id": "5mJYaNvIDsCvz7IPlJvD-Qg",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gemini-2.5-flash",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "AI learns patterns from data."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1230, "total_tokens": 1234},
    }
    assert usage == Usage(4, 652 + 578)


def test_function_calls_become_numbered_tool_calls() -> None:
    body, _ = translated(FUNCTION_CALL)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [(c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"])) for c in calls] == [
        ("call_0", "schedule_meeting", BOOKING),
        ("call_1", "get_time", {}),
    ]


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
     ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
     ("OTHER", "stop"), ("MALFORMED_FUNCTION_CALL", "stop")],
)  # fmt: skip
def test_finish_reasons_map(reason: str, finish: str) -> None:
    candidate = {**RESPONSE["candidates"][0], "finishReason": reason}
    body, _ = translated({**RESPONSE, "candidates": [candidate]})
    assert body["choices"][0]["finish_reason"] == finish


def test_several_candidates_become_several_choices() -> None:
    first = {"content": {"parts": [{"text": "One"}], "role": "model"}, "finishReason": "STOP", "index": 0}
    second = {"content": {"parts": [{"text": "Two"}], "role": "model"}, "finishReason": "MAX_TOKENS", "index": 1}
    body, _ = translated({**RESPONSE, "candidates": [first, second]})
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in body["choices"]] == [
        (0, "One", "stop"),
        (1, "Two", "length"),
    ]


def test_a_blocked_prompt_is_a_content_filter_finish() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
    }
    body, usage = translated(blocked)
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": "content_filter",
        }
    ]
    assert body["model"] == "gemini-fallback"
    assert usage == Usage(8, 0)


@pytest.mark.parametrize(
    ("status", "grpc", "client", "openai_type"),
    [
        (400, "INVALID_ARGUMENT", 400, "invalid_request_error"),
        (403, "PERMISSION_DENIED", 403, "permission_error"),
        (404, "NOT_FOUND", 404, "not_found_error"),
        (429, "RESOURCE_EXHAUSTED", 429, "rate_limit_error"),
        (500, "INTERNAL", 502, "server_error"),
        (503, "UNAVAILABLE", 503, "server_error"),
        (504, "DEADLINE_EXCEEDED", 502, "server_error"),
    ],
)
def test_errors_map_to_openai_errors(status: int, grpc: str, client: int, openai_type: str) -> None:
    error = {"error": {"code": status, "message": "The model is overloaded.", "status": grpc}}
    response = TRANSLATOR.translate_response(status, orjson.dumps(error), "gemini")
    assert (response.status, response.retry_after) == (client, None)
    assert orjson.loads(response.body) == {
        "error": {"message": "The model is overloaded.", "type": openai_type, "param": None, "code": grpc}
    }


def test_a_quota_error_says_when_to_retry() -> None:
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "requests"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "46.3s"},
    ]
    quota = {"code": 429, "message": "You exceeded your current quota", "status": "RESOURCE_EXHAUSTED"}
    error = [{"error": {**quota, "details": details}}]
    response = TRANSLATOR.translate_response(429, orjson.dumps(error), "gemini")
    assert (response.status, response.retry_after) == (429, "47")


# --- streams ----------------------------------------------------------------------------------------


def chunk(parts: list[dict[str, Any]], finish: str | None = None, **usage: int) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    meta = {"promptTokenCount": 8, "totalTokenCount": 8 + sum(usage.values()), **usage}
    return {"candidates": [candidate], "usageMetadata": meta, "modelVersion": "gemini-2.5-flash", "responseId": "r-1"}


TEXT_STREAM = sse(
    (None, chunk([{"text": "Once upon"}])),
    (None, chunk([{"text": " a time"}], candidatesTokenCount=3)),
    (None, chunk([{"text": "."}], "STOP", candidatesTokenCount=4, thoughtsTokenCount=10)),
    eol="\r\n",
)
CALL_STREAM = sse(
    (None, chunk([{"text": "Booking."}])),
    (None, chunk([{"functionCall": {"name": "book", "args": {"topic": "Q3"}}}], "STOP", candidatesTokenCount=9)),
    eol="\r\n",
)


def stream_events(raw: bytes | list[bytes], include_usage: bool = False) -> tuple[list[Any], Usage | None]:
    with frozen_time():
        stream = TRANSLATOR.stream_translator("gemini-fallback", include_usage)
        out = run_stream(stream, raw if isinstance(raw, list) else [raw])
    return client_events(out), stream.usage


def deltas(events: list[Any]) -> list[tuple[dict[str, Any], str | None]]:
    choices = [choice for event in events if event != "[DONE]" for choice in event["choices"]]
    return [(choice["delta"], choice["finish_reason"]) for choice in choices]


def test_text_stream_becomes_chunks_then_done() -> None:
    events, usage = stream_events(TEXT_STREAM)
    assert events[0] == {
        "id": "r-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gemini-2.5-flash",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": "Once upon"},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }
    assert deltas(events) == [
        ({"role": "assistant", "content": "Once upon"}, None),
        ({"content": " a time"}, None),
        ({"content": "."}, "stop"),
    ]
    assert events[-1] == "[DONE]"
    assert usage == Usage(8, 14)


def test_usage_chunk_is_added_at_the_end_when_the_client_asked_for_it() -> None:
    events, _ = stream_events(TEXT_STREAM, include_usage=True)
    assert events[-2]["choices"] == []
    assert events[-2]["usage"] == {"prompt_tokens": 8, "completion_tokens": 14, "total_tokens": 22}


def test_function_call_stream_becomes_a_tool_call_delta() -> None:
    events, usage = stream_events(CALL_STREAM)
    function = {"name": "book", "arguments": '{"topic":"Q3"}'}
    assert deltas(events) == [
        ({"role": "assistant", "content": "Booking."}, None),
        ({"tool_calls": [{"index": 0, "id": "call_0", "type": "function", "function": function}]}, "tool_calls"),
    ]
    assert usage == Usage(8, 9)


def test_an_error_in_the_stream_becomes_an_openai_error_event() -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    events, _ = stream_events(sse((None, chunk([{"text": "Once"}])), (None, error), (None, chunk([{"text": "x"}]))))
    assert events[1:] == [
        {"error": {"message": "The model is overloaded.", "type": "server_error", "param": None, "code": "UNAVAILABLE"}}
    ]


def test_a_stream_without_a_finish_reason_ends_with_an_error_event() -> None:
    events, _ = stream_events(sse((None, chunk([{"text": "Once"}]))))
    assert events[-1]["error"]["type"] == "server_error"
    assert "[DONE]" not in events


test_text_stream_does_not_depend_on_how_the_network_splits_it = split_invariance(
    lambda: TRANSLATOR.stream_translator("gemini", include_usage=True), TEXT_STREAM
)
test_call_stream_does_not_depend_on_how_the_network_splits_it = split_invariance(
    lambda: TRANSLATOR.stream_translator("gemini", include_usage=False), CALL_STREAM
)


# --- end to end against the Gemini stand-in ---------------------------------------------------------


async def post(standin: GeminiStandIn, body: dict[str, Any]) -> Any:
    request = TRANSLATOR.build_request(body, ENDPOINT)
    return await exchange(standin.origin, request.path, request.headers, request.body)


async def test_plain_completion_through_the_stand_in_counts_thinking_as_completion() -> None:
    body = {"messages": [{"role": "system", "content": "Be brief."}, user("Explain how AI works")], "max_tokens": 3}
    async with GeminiStandIn(api_key="goog-target", thoughts_tokens=20) as standin:
        reply = await post(standin, body)
    response = TRANSLATOR.translate_response(reply.status, reply.body, "gemini-2.5-flash")
    assert response.status == 200, response.body
    choice = orjson.loads(response.body)["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("Echo: Explain how", "length")
    assert response.usage == Usage(6, 3 + 20)
    assert standin.requests[0].headers["x-goog-api-key"] == "goog-target"
    assert standin.requests[0].body["generationConfig"] == {"maxOutputTokens": 3}


async def test_stream_through_the_stand_in() -> None:
    async with GeminiStandIn(api_key="goog-target") as standin:
        reply = await post(standin, {"messages": [user("Tell me a story")], "stream": True})
    assert standin.requests[0].path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    events, usage = stream_events(reply.chunks, include_usage=True)
    assert "".join(delta.get("content", "") for delta, _ in deltas(events)) == "Echo: Tell me a story"
    assert deltas(events)[-1][1] == "stop"
    assert events[-1] == "[DONE]"
    assert usage == Usage(4, 5)


async def test_tool_round_trip_through_the_stand_in() -> None:
    messages: list[dict[str, Any]] = [user("Plan Q3")]
    async with GeminiStandIn(api_key="goog-target") as standin:
        reply = await post(standin, {"messages": messages, "tools": TOOLS})
        first = orjson.loads(TRANSLATOR.translate_response(reply.status, reply.body, "gemini").body)
        assistant = first["choices"][0]["message"]
        tool_call = assistant["tool_calls"][0]
        messages += [assistant, {"role": "tool", "tool_call_id": tool_call["id"], "content": "booked"}]
        reply = await post(standin, {"messages": messages, "tools": TOOLS})
        second = TRANSLATOR.translate_response(reply.status, reply.body, "gemini")
    assert (tool_call["function"]["name"], orjson.loads(tool_call["function"]["arguments"])) == (
        "schedule_meeting",
        {"attendees": "Plan Q3"},
    )
    assert second.status == 200, second.body
    assert orjson.loads(second.body)["choices"][0]["message"]["content"] == 'Echo: {"output":"booked"}'
    response_part = standin.requests[1].body["contents"][2]["parts"][0]
    assert response_part == {"functionResponse": {"name": "schedule_meeting", "response": {"output": "booked"}}}


async def test_quota_exhaustion_through_the_stand_in_carries_the_retry_delay() -> None:
    async with GeminiStandIn(api_key="goog-target") as standin:
        standin.fail_next(429, retry_after="30")
        reply = await post(standin, {"messages": [user("Hi")]})
    response = TRANSLATOR.translate_response(reply.status, reply.body, "gemini")
    assert (response.status, response.retry_after) == (429, "30")
    assert orjson.loads(response.body)["error"]["code"] == "RESOURCE_EXHAUSTED"
