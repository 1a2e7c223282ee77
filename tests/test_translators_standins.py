"""The stand-ins are faithful: each provider's official SDK accepts them, they reject what the real APIs reject,
and their scripted faults behave as documented."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.standins.anthropic_standin import AnthropicStandIn
from tests.standins.base import exchange, serve_in_thread
from tests.standins.gemini_standin import GeminiStandIn
from tests.standins.openai_standin import OpenAIStandIn

KEY = "sk-standin-key"
HI = [{"role": "user", "content": "Hello there"}]
WEATHER_SCHEMA = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}


# --- OpenAI -----------------------------------------------------------------------------------------


def test_openai_sdk_plain_streamed_and_tool_calls() -> None:
    standin = OpenAIStandIn(api_key=KEY)
    with serve_in_thread(standin) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        tool = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}
        called = client.chat.completions.create(model="gpt-4o-mini", messages=HI, tools=[tool])
    assert completion.choices[0].message.content == "Echo: Hello there"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (2, 3)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: Hello there"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 5
    tool_call = called.choices[0].message.tool_calls[0]
    assert (tool_call.function.name, orjson.loads(tool_call.function.arguments)) == (
        "get_weather",
        {"location": "Hello there"},
    )
    assert called.choices[0].finish_reason == "tool_calls"
    assert standin.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_openai_sdk_sees_auth_errors_and_retries_scripted_rate_limits() -> None:
    standin = OpenAIStandIn(api_key=KEY)
    with serve_in_thread(standin) as base_url:
        with pytest.raises(openai.AuthenticationError) as rejected:
            openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=HI
            )
        standin.fail_next(429, retry_after="0")
        retried = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=1).chat.completions.create(
            model="gpt-4o-mini", messages=HI
        )
    assert rejected.value.status_code == 401
    assert rejected.value.code == "invalid_api_key"
    assert retried.choices[0].message.content == "Echo: Hello there"
    assert len(standin.requests) == 3


async def test_openai_stand_in_rejects_what_openai_rejects() -> None:
    headers = [("authorization", f"Bearer {KEY}"), ("content-type", "application/json")]
    cases = [
        ({"model": "m", "messages": HI, "max_tokenz": 5}, "Unrecognized request argument supplied: max_tokenz"),
        ({"model": "m", "messages": []}, "[] is too short - 'messages'"),
        ({"model": "m", "messages": HI, "stream_options": {"include_usage": True}}, "only allowed when 'stream'"),
        ({"model": "m", "messages": [*HI, {"role": "tool", "tool_call_id": "x", "content": "y"}]}, "role 'tool'"),
    ]
    async with OpenAIStandIn(api_key=KEY) as standin:
        for body, message in cases:
            reply = await exchange(standin.origin, "/v1/chat/completions", headers, orjson.dumps(body))
            assert reply.status == 400
            error = orjson.loads(reply.body)["error"]
            assert message in error["message"] and error["type"] == "invalid_request_error"


# --- Anthropic --------------------------------------------------------------------------------------


def test_anthropic_sdk_plain_streamed_and_tool_use() -> None:
    standin = AnthropicStandIn(api_key=KEY)
    with serve_in_thread(standin) as base_url:
        client = anthropic.Anthropic(base_url=base_url, api_key=KEY, max_retries=0)
        message = client.messages.create(model="claude-opus-4-6", max_tokens=1024, messages=HI)
        with client.messages.stream(model="claude-opus-4-6", max_tokens=1024, messages=HI) as stream:
            texts = list(stream.text_stream)
            final = stream.get_final_message()
        tool = {"name": "get_weather", "input_schema": WEATHER_SCHEMA}
        used = client.messages.create(model="claude-opus-4-6", max_tokens=1024, messages=HI, tools=[tool])
    assert message.content[0].text == "Echo: Hello there"
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == ("end_turn", 2, 3)
    assert "".join(texts) == "Echo: Hello there"
    assert (final.stop_reason, final.usage.output_tokens) == ("end_turn", 3)
    assert used.stop_reason == "tool_use"
    assert (used.content[0].name, used.content[0].input) == ("get_weather", {"location": "Hello there"})


def test_anthropic_sdk_errors_from_the_stand_in() -> None:
    standin = AnthropicStandIn(api_key=KEY)
    with serve_in_thread(standin) as base_url:
        client = anthropic.Anthropic(base_url=base_url, api_key=KEY, max_retries=0)
        with pytest.raises(anthropic.BadRequestError) as system_role:
            client.messages.create(model="claude", max_tokens=10, messages=[{"role": "system", "content": "x"}, *HI])
        with pytest.raises(anthropic.BadRequestError) as removed:  # the SDK sends API version 2026-10-21
            client.messages.create(model="claude", max_tokens=10, messages=HI, extra_body={"temperature": 0.5})
        standin.fail_next(529)
        with pytest.raises(anthropic.APIStatusError) as overloaded:
            client.messages.create(model="claude", max_tokens=10, messages=HI)
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=base_url, api_key="wrong", max_retries=0).messages.create(
                model="claude", max_tokens=10, messages=HI
            )
    assert 'Unexpected role "system"' in system_role.value.message
    assert "temperature" in removed.value.message
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"


async def test_anthropic_stand_in_rejects_what_anthropic_rejects() -> None:
    headers = [("x-api-key", KEY), ("anthropic-version", "2023-06-01"), ("content-type", "application/json")]
    tool_use = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]}
    empty = {"role": "user", "content": [{"type": "text", "text": ""}]}
    base = {"model": "claude", "max_tokens": 5}
    cases = [
        ({"model": "claude", "messages": HI}, "max_tokens: Field required"),
        ({**base, "messages": HI, "n": 2}, "n: Extra inputs are not permitted"),
        ({**base, "messages": [*HI, tool_use, *HI]}, "`tool_use` ids were found"),
        ({**base, "messages": [empty]}, "text content blocks must be non-empty"),
        ({**base, "messages": HI, "temperature": 1.5}, "temperature: range: 0..1"),
    ]
    async with AnthropicStandIn(api_key=KEY) as standin:
        for body, message in cases:
            reply = await exchange(standin.origin, "/v1/messages", headers, orjson.dumps(body))
            assert reply.status == 400, body
            assert orjson.loads(reply.body)["type"] == "error"
            assert message in orjson.loads(reply.body)["error"]["message"]
        unversioned = await exchange(standin.origin, "/v1/messages", headers[:1], orjson.dumps({}))
    assert unversioned.status == 400
    assert "anthropic-version" in orjson.loads(unversioned.body)["error"]["message"]


# --- Gemini -----------------------------------------------------------------------------------------


def test_google_genai_sdk_plain_streamed_and_function_calls() -> None:
    standin = GeminiStandIn(api_key=KEY)
    with serve_in_thread(standin) as base_url:
        client = genai.Client(api_key=KEY, http_options={"base_url": base_url})
        response = client.models.generate_content(model="gemini-2.5-flash", contents="Explain how AI works")
        streamed = list(
            client.models.generate_content_stream(model="gemini-2.5-flash", contents="Explain how AI works")
        )
        declaration = genai_types.FunctionDeclaration(
            name="get_weather", description="Weather", parameters_json_schema=WEATHER_SCHEMA
        )
        config = genai_types.GenerateContentConfig(
            tools=[genai_types.Tool(function_declarations=[declaration])],
            automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True),
        )
        called = client.models.generate_content(model="gemini-2.5-flash", contents="Paris", config=config)
    assert response.text == "Echo: Explain how AI works"
    assert response.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert (response.usage_metadata.prompt_token_count, response.usage_metadata.candidates_token_count) == (4, 5)
    assert "".join(chunk.text for chunk in streamed) == "Echo: Explain how AI works"
    assert streamed[-1].usage_metadata.candidates_token_count == 5
    assert [(c.name, c.args) for c in called.function_calls] == [("get_weather", {"location": "Paris"})]
    assert standin.requests[0].headers["x-goog-api-key"] == KEY


def test_google_genai_sdk_sees_gemini_auth_errors() -> None:
    standin = GeminiStandIn(api_key=KEY)
    with serve_in_thread(standin) as base_url:
        client = genai.Client(api_key="wrong", http_options={"base_url": base_url})
        with pytest.raises(genai_errors.ClientError) as rejected:
            client.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    assert (rejected.value.code, rejected.value.status) == (400, "INVALID_ARGUMENT")
    assert rejected.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"


async def test_gemini_stand_in_rejects_what_gemini_rejects() -> None:
    headers = [("x-goog-api-key", KEY), ("content-type", "application/json")]
    call = {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}, {"functionCall": {"name": "g"}}]}
    answer = {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": 1}}}]}
    user = {"role": "user", "parts": [{"text": "Hi"}]}
    cases = [
        ({"contents": [user], "generationConfig": {"maxTokens": 5}}, 'Unknown name "maxTokens"'),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "Please use a valid role: user, model."),
        ({"contents": []}, "contents is not specified"),
        ({"contents": [user, call, answer]}, "number of function response parts is equal"),
        ({"contents": [user, answer]}, "comes immediately after a function call turn"),
    ]
    async with GeminiStandIn(api_key=KEY) as standin:
        path = "/v1beta/models/gemini-2.5-flash:generateContent"
        for body, message in cases:
            reply = await exchange(standin.origin, path, headers, orjson.dumps(body))
            assert reply.status == 400, body
            error = orjson.loads(reply.body)["error"]
            assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
            assert message in error["message"]
        keyless = await exchange(standin.origin, path, headers[1:], orjson.dumps({"contents": [user]}))
        by_query = await exchange(standin.origin, f"{path}?key={KEY}", headers[1:], orjson.dumps({"contents": [user]}))
    assert (keyless.status, orjson.loads(keyless.body)["error"]["status"]) == (403, "PERMISSION_DENIED")
    assert by_query.status == 200


async def test_gemini_stream_without_alt_sse_is_a_json_array() -> None:
    headers = [("x-goog-api-key", KEY), ("content-type", "application/json")]
    body = orjson.dumps({"contents": [{"role": "user", "parts": [{"text": "one two"}]}]})
    async with GeminiStandIn(api_key=KEY) as standin:
        reply = await exchange(standin.origin, "/v1beta/models/gemini-2.5-flash:streamGenerateContent", headers, body)
    chunks = orjson.loads(reply.body)
    assert [chunk["candidates"][0]["content"]["parts"][0]["text"] for chunk in chunks] == ["Echo: ", "one ", "two"]


# --- scripted faults --------------------------------------------------------------------------------

OPENAI_HEADERS = [("authorization", f"Bearer {KEY}"), ("content-type", "application/json")]


def chat(stream: bool = False) -> bytes:
    return orjson.dumps({"model": "gpt-4o-mini", "messages": HI, "stream": stream})


async def test_failures_apply_to_the_next_n_requests_with_the_given_body() -> None:
    async with OpenAIStandIn(api_key=KEY) as standin:
        standin.fail_next(503, times=2, body=b'{"error": {"message": "down"}}', retry_after="5")
        replies = [await exchange(standin.origin, "/v1/chat/completions", OPENAI_HEADERS, chat()) for _ in range(3)]
    assert [(reply.status, reply.headers.get("retry-after")) for reply in replies] == [
        (503, "5"),
        (503, "5"),
        (200, None),
    ]
    assert replies[0].body == b'{"error": {"message": "down"}}'
    assert len(standin.requests) == 3


async def test_a_hung_request_is_never_answered() -> None:
    async with OpenAIStandIn(api_key=KEY) as standin:
        standin.hang_next()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(exchange(standin.origin, "/v1/chat/completions", OPENAI_HEADERS, chat()), 0.3)
        after = await exchange(standin.origin, "/v1/chat/completions", OPENAI_HEADERS, chat())
    assert after.status == 200


@pytest.mark.parametrize("stream", [False, True])
async def test_a_disconnect_cuts_the_response_short(stream: bool) -> None:
    async with OpenAIStandIn(api_key=KEY) as standin:
        standin.disconnect_next()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                standin.origin + "/v1/chat/completions", headers=OPENAI_HEADERS, data=chat(stream)
            ) as response,
        ):
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()


async def test_a_held_stream_sends_its_first_chunk_and_waits_for_the_event() -> None:
    async with OpenAIStandIn(api_key=KEY) as standin:
        gate = standin.hold_next_stream()
        async with (
            aiohttp.ClientSession() as session,
            session.post(standin.origin + "/v1/chat/completions", headers=OPENAI_HEADERS, data=chat(True)) as response,
        ):
            first = await response.content.readuntil(b"\n\n")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(response.content.readuntil(b"\n\n"), 0.2)
            gate.set()
            rest = await response.content.read()
    assert b'"role":"assistant"' in first
    assert rest.endswith(b"data: [DONE]\n\n")


def test_a_held_stream_is_released_from_another_thread() -> None:
    standin = OpenAIStandIn(api_key=KEY)
    with serve_in_thread(standin) as base_url:
        standin.hold_next_stream()
        client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
        first = next(iter(stream))
        standin.release()
        rest: list[Any] = list(stream)
    assert first.choices[0].delta.role == "assistant"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in rest) == "Echo: Hello there"
