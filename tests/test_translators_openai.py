"""OpenAI-compatible targets (OpenAI, llama.cpp): requests, responses, errors and streams, unit and end to end."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.providers.base import Endpoint, Usage
from extproc.providers.openai_compat import OpenAICompatTranslator
from tests.standins.base import exchange
from tests.standins.openai_standin import OpenAIStandIn
from tests.test_translators_common import client_events, run_stream, split_invariance, sse

TRANSLATOR = OpenAICompatTranslator()
ENDPOINT = Endpoint(base_path="/v1", model="gpt-4o-mini", api_key="sk-target")
HELLO = {
    "model": "router-alias",
    "messages": [
        {"role": "developer", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello!"},
    ],
    "temperature": 0.2,
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        },
    }
]


def body_of(request: Any) -> dict[str, Any]:
    return orjson.loads(request.body)


# --- requests ---------------------------------------------------------------------------------------


def test_request_targets_chat_completions_under_the_base_path_with_the_targets_model_and_key() -> None:
    request = TRANSLATOR.build_request(HELLO, ENDPOINT)
    assert request.path == "/v1/chat/completions"
    assert dict(request.headers) == {"content-type": "application/json", "authorization": "Bearer sk-target"}
    assert body_of(request) == {**HELLO, "model": "gpt-4o-mini"}


def test_request_without_a_key_sends_no_authorization() -> None:
    request = TRANSLATOR.build_request(HELLO, Endpoint("", "llama", None))
    assert request.path == "/chat/completions"
    assert dict(request.headers) == {"content-type": "application/json"}


def test_streamed_request_always_asks_for_usage_and_keeps_other_stream_options() -> None:
    body = {**HELLO, "stream": True, "stream_options": {"include_obfuscation": False}}
    sent = body_of(TRANSLATOR.build_request(body, ENDPOINT))
    assert sent["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert body_of(TRANSLATOR.build_request({**HELLO, "stream": True}, ENDPOINT))["stream_options"] == {
        "include_usage": True
    }
    assert "stream_options" not in body_of(TRANSLATOR.build_request(HELLO, ENDPOINT))


def test_request_leaves_the_clients_body_untouched() -> None:
    body = {**HELLO, "stream": True}
    TRANSLATOR.build_request(body, ENDPOINT)
    assert body == {**HELLO, "stream": True}


# --- responses --------------------------------------------------------------------------------------

COMPLETION = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! How can I assist you today?", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29},
}


def test_response_passes_through_byte_for_byte_and_reads_usage() -> None:
    raw = orjson.dumps(COMPLETION)
    response = TRANSLATOR.translate_response(200, raw, "gpt-4o-mini")
    assert (response.status, response.body, response.usage) == (200, raw, Usage(19, 10))


def test_response_without_usage_has_none() -> None:
    raw = orjson.dumps({key: value for key, value in COMPLETION.items() if key != "usage"})
    assert TRANSLATOR.translate_response(200, raw, "gpt-4o-mini").usage is None


def test_response_that_is_not_json_is_a_502() -> None:
    response = TRANSLATOR.translate_response(200, b"<html>oops</html>", "gpt-4o-mini")
    assert response.status == 502
    assert orjson.loads(response.body)["error"]["type"] == "server_error"


RATE_LIMIT = {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit_exceeded"}
BAD_KEY = {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}
LLAMA_CRASH = {"code": 500, "message": "crashed", "type": "server_error"}  # llama.cpp: numeric codes
LLAMA_LOADING = {"code": 503, "message": "Loading model", "type": "unavailable_error"}


@pytest.mark.parametrize(
    ("status", "error", "client", "expected"),
    [
        (429, RATE_LIMIT, 429, RATE_LIMIT),
        (401, BAD_KEY, 401, {**BAD_KEY, "param": None}),
        (500, LLAMA_CRASH, 502, {"message": "crashed", "type": "server_error", "param": None, "code": None}),
        (
            503,
            LLAMA_LOADING,
            503,
            {"message": "Loading model", "type": "unavailable_error", "param": None, "code": None},
        ),
    ],
)
def test_errors_are_normalised_to_the_openai_shape(
    status: int, error: dict[str, Any], client: int, expected: dict[str, Any]
) -> None:
    response = TRANSLATOR.translate_response(status, orjson.dumps({"error": error}), "gpt-4o-mini")
    assert (response.status, response.usage) == (client, None)
    assert orjson.loads(response.body) == {"error": expected}


def test_an_html_error_page_becomes_a_bad_gateway_error() -> None:
    response = TRANSLATOR.translate_response(502, b"<html><body>502 Bad Gateway</body></html>", "gpt-4o-mini")
    assert response.status == 502
    assert orjson.loads(response.body)["error"]["message"] == "<html><body>502 Bad Gateway</body></html>"


# --- streams ----------------------------------------------------------------------------------------

HEAD = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190, "model": "gpt-4o-mini"}
CHUNKS = [
    {**HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": None}
    for delta, finish in [({"role": "assistant", "content": ""}, None), ({"content": "Hello"}, None), ({}, "stop")]
]
CHUNKS.append({**HEAD, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}})
STREAM = sse(*[(None, chunk) for chunk in CHUNKS]) + b"data: [DONE]\n\n"


def test_stream_passes_chunks_through_and_keeps_the_usage_chunk_the_client_asked_for() -> None:
    stream = TRANSLATOR.stream_translator("gpt-4o-mini", include_usage=True)
    assert client_events(run_stream(stream, [STREAM])) == [*CHUNKS, "[DONE]"]
    assert stream.usage == Usage(9, 1)


def test_stream_drops_the_usage_only_chunk_the_client_did_not_ask_for_but_still_counts_it() -> None:
    stream = TRANSLATOR.stream_translator("gpt-4o-mini", include_usage=False)
    assert client_events(run_stream(stream, [STREAM])) == [*CHUNKS[:3], "[DONE]"]
    assert stream.usage == Usage(9, 1)


def test_llama_cpp_usage_on_the_final_choice_chunk_is_read_and_kept() -> None:
    final = {**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": CHUNKS[3]["usage"]}
    stream = TRANSLATOR.stream_translator("llama", include_usage=False)
    assert client_events(run_stream(stream, [sse((None, final)) + b"data: [DONE]\n\n"])) == [final, "[DONE]"]
    assert stream.usage == Usage(9, 1)


def test_an_error_event_is_passed_on_and_ends_the_stream() -> None:
    error = {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}}
    stream = TRANSLATOR.stream_translator("gpt-4o-mini", include_usage=False)
    out = run_stream(stream, [sse((None, CHUNKS[0]), (None, error), (None, CHUNKS[1]))])
    assert client_events(out) == [CHUNKS[0], error]


def test_a_stream_cut_before_done_ends_with_an_error_event() -> None:
    stream = TRANSLATOR.stream_translator("gpt-4o-mini", include_usage=False)
    events = client_events(run_stream(stream, [sse((None, CHUNKS[0]))]))
    assert events[0] == CHUNKS[0]
    assert events[1]["error"]["type"] == "server_error"
    assert len(events) == 2


def test_a_malformed_event_ends_the_stream_with_an_error() -> None:
    stream = TRANSLATOR.stream_translator("gpt-4o-mini", include_usage=False)
    events = client_events(run_stream(stream, [b"data: {not json\n\n", STREAM]))
    assert [event["error"]["type"] for event in events] == ["server_error"]


test_stream_output_does_not_depend_on_how_the_network_splits_it = split_invariance(
    lambda: TRANSLATOR.stream_translator("gpt-4o-mini", include_usage=False), STREAM
)


# --- end to end against the OpenAI stand-in ---------------------------------------------------------


async def test_plain_completion_through_the_stand_in() -> None:
    async with OpenAIStandIn(api_key="sk-target") as standin:
        request = TRANSLATOR.build_request(HELLO, ENDPOINT)
        reply = await exchange(standin.origin, request.path, request.headers, request.body)
        response = TRANSLATOR.translate_response(reply.status, reply.body, "gpt-4o-mini")
    assert standin.requests[0].body["model"] == "gpt-4o-mini"
    assert standin.requests[0].headers["authorization"] == "Bearer sk-target"
    assert response.status == 200
    assert orjson.loads(response.body)["choices"][0]["message"]["content"] == "Echo: Hello!"
    assert response.usage == Usage(6, 2)  # the stand-in counts words


async def test_streamed_tool_call_through_the_stand_in_keeps_usage_out_of_the_clients_stream() -> None:
    body = {"model": "x", "messages": [{"role": "user", "content": "Paris?"}], "tools": TOOLS, "stream": True}
    async with OpenAIStandIn(api_key="sk-target") as standin:
        request = TRANSLATOR.build_request(body, ENDPOINT)
        reply = await exchange(standin.origin, request.path, request.headers, request.body)
    stream = TRANSLATOR.stream_translator("gpt-4o-mini", include_usage=False)
    events = client_events(run_stream(stream, reply.chunks))
    assert events[-1] == "[DONE]"
    assert all(event["choices"] for event in events[:-1])
    calls = [call for event in events[:-1] for call in event["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["function"]["name"] == "get_weather"
    fragments = [call["function"]["arguments"] for call in calls]
    assert orjson.loads("".join(fragments)) == {"location": "Paris?"}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert stream.usage is not None


async def test_target_rate_limit_through_the_stand_in() -> None:
    async with OpenAIStandIn(api_key="sk-target") as standin:
        standin.fail_next(429, retry_after="20")
        request = TRANSLATOR.build_request(HELLO, ENDPOINT)
        reply = await exchange(standin.origin, request.path, request.headers, request.body)
    response = TRANSLATOR.translate_response(reply.status, reply.body, "gpt-4o-mini")
    assert reply.headers["retry-after"] == "20"
    assert response.status == 429
    assert orjson.loads(response.body)["error"]["message"] == "scripted failure"
