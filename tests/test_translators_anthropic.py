"""OpenAI chat completions <-> Anthropic Messages: requests, responses, errors and streams, unit and end to end."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.providers.anthropic import ANTHROPIC_VERSION, DEFAULT_MAX_TOKENS, AnthropicTranslator
from extproc.providers.base import Endpoint, Usage
from extproc.providers.errors import TranslationError
from tests.standins.anthropic_standin import AnthropicStandIn
from tests.standins.base import exchange
from tests.test_translators_common import client_events, frozen_time, run_stream, split_invariance, sse

TRANSLATOR = AnthropicTranslator()
ENDPOINT = Endpoint(base_path="", model="claude-opus-4-6", api_key="sk-ant-target")
WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}},
        "required": ["location"],
    },
}
TOOLS = [{"type": "function", "function": WEATHER}]


def sent(body: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(TRANSLATOR.build_request(body, ENDPOINT).body)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def weather_call(call_id: str, location: str) -> dict[str, Any]:
    arguments = orjson.dumps({"location": location}).decode()
    return {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}


# --- requests ---------------------------------------------------------------------------------------


def test_request_goes_to_v1_messages_with_key_version_and_type() -> None:
    request = TRANSLATOR.build_request({"messages": [user("Hello")]}, Endpoint("/gw/anthropic", "claude", "k"))
    assert request.path == "/gw/anthropic/v1/messages"
    assert dict(request.headers) == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": "k",
    }
    assert ANTHROPIC_VERSION == "2023-06-01"


def test_request_without_a_key_sends_no_x_api_key() -> None:
    headers = dict(TRANSLATOR.build_request({"messages": [user("Hi")]}, Endpoint("", "claude", None)).headers)
    assert "x-api-key" not in headers


def test_hello_world_with_system_prompts_hoisted_and_the_default_max_tokens() -> None:
    body = {
        "model": "router-alias",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer briefly."}]},
            user("Hello, Claude"),
        ],
    }
    assert sent(body) == {
        "model": "claude-opus-4-6",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, Claude"}]}],
        "max_tokens": DEFAULT_MAX_TOKENS,
        "system": "You are a helpful assistant.\n\nAnswer briefly.",
    }
    assert DEFAULT_MAX_TOKENS == 4096


def test_consecutive_messages_of_one_role_are_merged() -> None:
    body = {"messages": [user("Hi"), user("Are you there?"), {"role": "assistant", "content": "Yes."}, user("Good")]}
    assert [(turn["role"], [block["text"] for block in turn["content"]]) for turn in sent(body)["messages"]] == [
        ("user", ["Hi", "Are you there?"]),
        ("assistant", ["Yes."]),
        ("user", ["Good"]),
    ]


def test_empty_text_is_left_out_since_anthropic_rejects_empty_blocks() -> None:
    body = {"messages": [user("Hi"), {"role": "assistant", "content": ""}, user("Again")]}
    assert sent(body)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "Again"}]}
    ]


@pytest.mark.parametrize(
    ("limits", "max_tokens"),
    [
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": 200}, 200),
        ({"max_tokens": 1, "max_completion_tokens": 300}, 300),
    ],
)
def test_max_tokens_comes_from_either_openai_field(limits: dict[str, int], max_tokens: int) -> None:
    assert sent({"messages": [user("Hi")], **limits})["max_tokens"] == max_tokens


@pytest.mark.parametrize(("stop", "sequences"), [("END", ["END"]), (["a", "b"], ["a", "b"])])
def test_stop_becomes_stop_sequences(stop: Any, sequences: list[str]) -> None:
    assert sent({"messages": [user("Hi")], "stop": stop})["stop_sequences"] == sequences


def test_sampling_parameters_are_mapped_and_temperature_clamped_to_anthropics_range() -> None:
    assert sent({"messages": [user("Hi")], "temperature": 0.3, "top_p": 0.9}) | {"messages": []} == {
        "model": "claude-opus-4-6",
        "messages": [],
        "max_tokens": DEFAULT_MAX_TOKENS,
        "temperature": 0.3,
        "top_p": 0.9,
    }
    assert sent({"messages": [user("Hi")], "temperature": 1.7})["temperature"] == 1.0


def test_stream_flag_is_passed_on() -> None:
    assert sent({"messages": [user("Hi")], "stream": True})["stream"] is True
    assert "stream" not in sent({"messages": [user("Hi")]})


def test_tools_become_anthropic_tool_definitions() -> None:
    bare = {"type": "function", "function": {"name": "ping"}}
    assert sent({"messages": [user("Hi")], "tools": [*TOOLS, bare]})["tools"] == [
        {"name": "get_weather", "description": WEATHER["description"], "input_schema": WEATHER["parameters"]},
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
    ]


@pytest.mark.parametrize(
    ("choice", "anthropic"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tool_choice_is_mapped(choice: Any, anthropic: dict[str, str]) -> None:
    assert sent({"messages": [user("Hi")], "tools": TOOLS, "tool_choice": choice})["tool_choice"] == anthropic


def test_a_tool_conversation_becomes_tool_use_and_tool_result_blocks() -> None:
    body = {
        "messages": [
            user("What's the weather in SF and NYC?"),
            {
                "role": "assistant",
                "content": "Let me check both.",
                "tool_calls": [weather_call("toolu_1", "SF"), weather_call("toolu_2", "NYC")],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "15 degrees"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "22 degrees"}]},
            user("Which is warmer?"),
        ],
        "tools": TOOLS,
    }
    assert sent(body)["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check both."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "SF"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"location": "NYC"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "15 degrees"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "22 degrees"},
                {"type": "text", "text": "Which is warmer?"},
            ],
        },
    ]


def test_images_become_base64_or_url_sources() -> None:
    content = [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/ant.jpg"}},
    ]
    assert sent({"messages": [{"role": "user", "content": content}]})["messages"][0]["content"] == [
        {"type": "text", "text": "Compare these."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/ant.jpg"}},
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": ""}}]}]},
        {"messages": [{"role": "function", "name": "f", "content": "x"}]},
        {
            "messages": [
                {"role": "assistant", "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{oops"}}]}
            ]
        },
        {"messages": [user("Hi")], "tools": [{"type": "custom", "custom": {"name": "grammar"}}]},
    ],
)
def test_what_anthropic_cannot_express_is_a_translation_error(body: dict[str, Any]) -> None:
    with pytest.raises(TranslationError):
        TRANSLATOR.build_request(body, ENDPOINT)


# --- responses --------------------------------------------------------------------------------------

MESSAGE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-opus-4-6",
    "content": [{"type": "text", "text": "Hi! My name is Claude."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 2095, "output_tokens": 503},
}
TOOL_USE = {
    **MESSAGE,
    "id": "msg_01Aq9w938a90dw8q",
    "stop_reason": "tool_use",
    "content": [
        {"type": "text", "text": "I'll check the current weather in San Francisco for you."},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA", "unit": "celsius"},
        },
    ],
}


def translated(message: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
    with frozen_time():
        response = TRANSLATOR.translate_response(200, orjson.dumps(message), "claude-fallback")
    assert response.status == 200
    return orjson.loads(response.body), response.usage


def test_text_response_becomes_a_chat_completion() -> None:
    body, usage = translated(MESSAGE)
    assert body == {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "claude-opus-4-6",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi! My name is Claude."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598},
    }
    assert usage == Usage(2095, 503)


def test_tool_use_becomes_tool_calls_with_json_arguments() -> None:
    body, _ = translated(TOOL_USE)
    message = body["choices"][0]["message"]
    assert message["content"] == "I'll check the current weather in San Francisco for you."
    assert message["tool_calls"] == [
        {
            "id": "toolu_01A09q90qw90lq917835lq9",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location":"San Francisco, CA","unit":"celsius"}'},
        }
    ]
    assert body["choices"][0]["finish_reason"] == "tool_calls"


def test_only_tool_use_gives_null_content_and_text_blocks_are_joined() -> None:
    body, _ = translated({**TOOL_USE, "content": TOOL_USE["content"][1:]})
    assert body["choices"][0]["message"]["content"] is None
    two = [
        {"type": "text", "text": "Hello "},
        {"type": "thinking", "thinking": "hm"},
        {"type": "text", "text": "there"},
    ]
    body, _ = translated({**MESSAGE, "content": two})
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello there"}


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
     ("refusal", "content_filter"), ("pause_turn", "stop")],
)  # fmt: skip
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish_reason: str) -> None:
    body, _ = translated({**MESSAGE, "stop_reason": stop_reason})
    assert body["choices"][0]["finish_reason"] == finish_reason


def test_cache_writes_and_reads_count_as_prompt_tokens() -> None:
    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 3000,
        "output_tokens": 7,
    }
    body, counted = translated({**MESSAGE, "usage": usage})
    assert counted == Usage(3210, 7)
    assert body["usage"] == {"prompt_tokens": 3210, "completion_tokens": 7, "total_tokens": 3217}


def test_a_response_without_a_model_reports_the_one_asked_for() -> None:
    body, _ = translated({key: value for key, value in MESSAGE.items() if key != "model"})
    assert body["model"] == "claude-fallback"


@pytest.mark.parametrize(
    ("status", "kind", "client", "openai_type"),
    [
        (400, "invalid_request_error", 400, "invalid_request_error"),
        (401, "authentication_error", 401, "authentication_error"),
        (403, "permission_error", 403, "permission_error"),
        (404, "not_found_error", 404, "not_found_error"),
        (413, "request_too_large", 413, "invalid_request_error"),
        (429, "rate_limit_error", 429, "rate_limit_error"),
        (500, "api_error", 502, "server_error"),
        (529, "overloaded_error", 503, "server_error"),
    ],
)
def test_errors_map_to_openai_errors(status: int, kind: str, client: int, openai_type: str) -> None:
    error = {
        "type": "error",
        "error": {"type": kind, "message": "Overloaded"},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }
    response = TRANSLATOR.translate_response(status, orjson.dumps(error), "claude")
    assert (response.status, response.usage) == (client, None)
    assert orjson.loads(response.body) == {
        "error": {"message": "Overloaded", "type": openai_type, "param": None, "code": kind}
    }


def test_a_malformed_success_is_a_502() -> None:
    assert TRANSLATOR.translate_response(200, b"[]", "claude").status == 502


# --- streams ----------------------------------------------------------------------------------------

START = {
    "type": "message_start",
    "message": {
        "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-opus-4-6",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 1},
    },
}
TOOL_ID = "toolu_01T1x1fJ34qAmk2tNTrN7Up6"


def block_start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def block_stop(index: int) -> tuple[str, dict[str, Any]]:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


def message_end(stop_reason: str, output_tokens: int) -> list[tuple[str, dict[str, Any]]]:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return [
        ("message_delta", {"type": "message_delta", "delta": delta, "usage": {"output_tokens": output_tokens}}),
        ("message_stop", {"type": "message_stop"}),
    ]


TEXT_STREAM = sse(
    ("message_start", START),
    block_start(0, {"type": "text", "text": ""}),
    ("ping", {"type": "ping"}),
    block_delta(0, {"type": "text_delta", "text": "Hello"}),
    block_delta(0, {"type": "text_delta", "text": "!"}),
    block_stop(0),
    *message_end("end_turn", 15),
)
TOOL_STREAM = sse(
    ("message_start", START),
    block_start(0, {"type": "thinking", "thinking": ""}),
    block_delta(0, {"type": "thinking_delta", "thinking": "The user wants the weather."}),
    block_stop(0),
    block_start(1, {"type": "text", "text": ""}),
    block_delta(1, {"type": "text_delta", "text": "Okay, checking:"}),
    block_stop(1),
    block_start(2, {"type": "tool_use", "id": TOOL_ID, "name": "get_weather", "input": {}}),
    block_delta(2, {"type": "input_json_delta", "partial_json": ""}),
    block_delta(2, {"type": "input_json_delta", "partial_json": '{"location":'}),
    block_delta(2, {"type": "input_json_delta", "partial_json": ' "San Francisco, CA"}'}),
    block_stop(2),
    *message_end("tool_use", 89),
)


def stream_events(raw: bytes | list[bytes], include_usage: bool = False) -> tuple[list[Any], Usage | None]:
    with frozen_time():
        stream = TRANSLATOR.stream_translator("claude-fallback", include_usage)
        out = run_stream(stream, raw if isinstance(raw, list) else [raw])
    return client_events(out), stream.usage


def deltas(events: list[Any]) -> list[tuple[dict[str, Any], str | None]]:
    choices = [choice for event in events if event != "[DONE]" for choice in event["choices"]]
    return [(choice["delta"], choice["finish_reason"]) for choice in choices]


def test_text_stream_becomes_chunks_with_role_text_and_finish() -> None:
    events, usage = stream_events(TEXT_STREAM)
    assert events[0] == {
        "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "claude-opus-4-6",
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        ],
    }
    assert deltas(events) == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "Hello"}, None),
        ({"content": "!"}, None),
        ({}, "stop"),
    ]
    assert events[-1] == "[DONE]"
    assert usage == Usage(25, 15)


def test_usage_chunk_is_added_when_the_client_asked_for_it() -> None:
    events, _ = stream_events(TEXT_STREAM, include_usage=True)
    assert events[-2]["choices"] == []
    assert events[-2]["usage"] == {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40}
    assert events[-1] == "[DONE]"


def test_tool_stream_becomes_tool_call_deltas_and_skips_thinking() -> None:
    events, usage = stream_events(TOOL_STREAM)
    function = {"name": "get_weather", "arguments": ""}
    start = {"index": 0, "id": TOOL_ID, "type": "function", "function": function}
    assert deltas(events) == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "Okay, checking:"}, None),
        ({"tool_calls": [start]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": '{"location":'}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": ' "San Francisco, CA"}'}}]}, None),
        ({}, "tool_calls"),
    ]
    assert usage == Usage(25, 89)


def test_an_error_event_becomes_an_openai_error_event_and_ends_the_stream() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    raw = sse(("message_start", START), ("error", error), ("message_stop", {"type": "message_stop"}))
    events, usage = stream_events(raw)
    expected = {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded_error"}
    assert events[1:] == [{"error": expected}]
    assert usage == Usage(25, 1)


def test_a_stream_cut_before_message_stop_ends_with_an_error_event() -> None:
    events, _ = stream_events(TEXT_STREAM[: TEXT_STREAM.index(b"event: message_delta")])
    assert events[-1]["error"]["type"] == "server_error"
    assert "[DONE]" not in events


test_text_stream_does_not_depend_on_how_the_network_splits_it = split_invariance(
    lambda: TRANSLATOR.stream_translator("claude", include_usage=True), TEXT_STREAM
)
test_tool_stream_does_not_depend_on_how_the_network_splits_it = split_invariance(
    lambda: TRANSLATOR.stream_translator("claude", include_usage=False), TOOL_STREAM
)


# --- end to end against the Anthropic stand-in ------------------------------------------------------


async def call(standin: AnthropicStandIn, body: dict[str, Any]) -> Any:
    request = TRANSLATOR.build_request(body, ENDPOINT)
    return await exchange(standin.origin, request.path, request.headers, request.body)


async def test_plain_message_through_the_stand_in() -> None:
    body = {"messages": [{"role": "system", "content": "Be terse."}, user("Hello, Claude")], "max_tokens": 2}
    async with AnthropicStandIn(api_key="sk-ant-target") as standin:
        reply = await call(standin, body)
    response = TRANSLATOR.translate_response(reply.status, reply.body, "claude-opus-4-6")
    assert response.status == 200, response.body
    choice = orjson.loads(response.body)["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("Echo: Hello,", "length")
    assert response.usage == Usage(4, 2)
    received = standin.requests[0]
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == "sk-ant-target"
    assert received.body["system"] == "Be terse."


async def test_stream_with_a_stop_sequence_through_the_stand_in() -> None:
    body = {"messages": [user("one two three")], "stop": ["three"], "stream": True}
    async with AnthropicStandIn(api_key="sk-ant-target") as standin:
        reply = await call(standin, body)
    events, usage = stream_events(reply.chunks, include_usage=True)
    text = "".join(delta.get("content", "") for delta, _ in deltas(events))
    assert text == "Echo: one two "
    assert deltas(events)[-1] == ({}, "stop")
    assert events[-1] == "[DONE]"
    assert usage == Usage(3, 3)


async def test_tool_round_trip_through_the_stand_in() -> None:
    messages: list[dict[str, Any]] = [user("San Francisco")]
    async with AnthropicStandIn(api_key="sk-ant-target") as standin:
        reply = await call(standin, {"messages": messages, "tools": TOOLS})
        first = orjson.loads(TRANSLATOR.translate_response(reply.status, reply.body, "claude").body)
        assistant = first["choices"][0]["message"]
        call_id = assistant["tool_calls"][0]["id"]
        messages += [assistant, {"role": "tool", "tool_call_id": call_id, "content": "Sunny, 18C"}]
        reply = await call(standin, {"messages": messages, "tools": TOOLS})
        second = TRANSLATOR.translate_response(reply.status, reply.body, "claude")
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert orjson.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"location": "San Francisco"}
    assert second.status == 200, second.body
    assert orjson.loads(second.body)["choices"][0]["message"]["content"] == "Echo: Sunny, 18C"
    assert standin.requests[1].body["messages"][2]["content"][0]["type"] == "tool_result"


async def test_overloaded_target_through_the_stand_in() -> None:
    async with AnthropicStandIn(api_key="sk-ant-target") as standin:
        standin.fail_next(529, retry_after="3")
        reply = await call(standin, {"messages": [user("Hi")]})
    response = TRANSLATOR.translate_response(reply.status, reply.body, "claude")
    assert (reply.status, reply.headers["retry-after"]) == (529, "3")
    assert response.status == 503
    assert orjson.loads(response.body)["error"]["code"] == "overloaded_error"
