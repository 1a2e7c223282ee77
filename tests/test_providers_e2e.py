"""External providers through real Envoy with the official OpenAI SDK as the client (issue: providers).

Each provider runs as a faithful stand-in of its own API; the router translates OpenAI <-> that API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from extproc.local.llama_server import free_port
from tests.stack_runner import RunningStack, run_stack, stack_document
from tests.standins.anthropic_standin import AnthropicStandIn
from tests.standins.base import StandIn, serve_in_thread
from tests.standins.gemini_standin import GeminiStandIn
from tests.standins.openai_standin import OpenAIStandIn

KEYS = {"openai": "sk-openai-e2e-1", "claude": "sk-ant-e2e-2", "gemini": "AIza-e2e-3"}
MODELS = {"openai": "gpt-4o-mini", "claude": "claude-3-5-haiku-20241022", "gemini": "gemini-2.0-flash"}
STANDINS: dict[str, type[StandIn]] = {"openai": OpenAIStandIn, "claude": AnthropicStandIn, "gemini": GeminiStandIn}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def provider_entry(kind: str, standin: StandIn, **extra: str) -> dict:
    return {
        "name": kind,
        "type": kind,
        "apiKey": KEYS[kind],
        "defaultModel": MODELS[kind],
        "baseUrl": standin.origin + ("/v1" if kind == "openai" else ""),
        **extra,
    }


class ProviderStack:
    def __init__(self, kind: str, standin: StandIn, stack: RunningStack) -> None:
        self.kind, self.standin, self.stack = kind, standin, stack
        self.client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="client-key", max_retries=0)


@pytest.fixture(scope="module", params=["openai", "claude", "gemini"])
def provider(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProviderStack]:
    kind = request.param
    standin = STANDINS[kind](api_key=KEYS[kind])
    with serve_in_thread(standin):
        document = stack_document([], [provider_entry(kind, standin)], routingStrategy="cost", maxFallbacks=0)
        with run_stack(document, tmp_path_factory.mktemp(f"stack-{kind}")) as stack:
            yield ProviderStack(kind, standin, stack)


def ask(provider: ProviderStack, text: str, **extra: object) -> object:
    return provider.client.chat.completions.create(model="auto", messages=[{"role": "user", "content": text}], **extra)


def test_plain_completion(provider: ProviderStack) -> None:
    reply = ask(provider, "What is 2 + 2?", max_tokens=50)
    assert reply.choices[0].message.content == "Echo: What is 2 + 2?"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    received = provider.standin.requests[-1]
    assert received.headers.get("authorization", "") != "Bearer client-key"
    assert KEYS[provider.kind] in str(received.headers)


def test_streamed_completion_assembles_the_same_text_with_usage(provider: ProviderStack) -> None:
    chunks = list(ask(provider, "Tell me a story", stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: Tell me a story"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)


def test_tool_call_round_trip(provider: ProviderStack) -> None:
    first = ask(provider, "Paris", tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == {"city": "Paris"}
    second = provider.client.chat.completions.create(
        model="auto",
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Paris"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
        ],
    )
    assert second.choices[0].message.content
    assert second.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (429, openai.RateLimitError),
        (401, openai.AuthenticationError),
        (400, openai.BadRequestError),
    ],
)
def test_provider_errors_surface_as_the_right_sdk_exception(
    provider: ProviderStack, status: int, exception: type[Exception]
) -> None:
    provider.standin.fail_next(status, times=3, retry_after="1")
    with pytest.raises(exception) as caught:
        ask(provider, "Hi")
    body = caught.value.body
    assert isinstance(body, dict) and body.get("message"), body
    provider.standin._faults.clear()


def test_streaming_is_not_buffered(provider: ProviderStack) -> None:
    """The client gets the first chunk while the provider still holds the rest back."""
    with serve_in_thread_hold(provider.standin) as release:
        stream = ask(provider, "one two three four", stream=True)
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant" or first.choices[0].delta.content
        release()
        rest = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert rest.endswith("four")


@pytest.mark.parametrize("provider", ["openai"], indirect=True)
def test_a_usage_event_cut_in_two_is_still_taken_out_and_nothing_before_it_waits(provider: ProviderStack) -> None:
    """The client did not ask for the usage event; the provider's arrives in two pieces, far apart. Every event
    before it reaches the client at once; the event itself never does."""
    with serve_in_thread_hold(provider.standin, before=b'"usage":{') as release:
        chunks = iter(ask(provider, "one two three", stream=True, timeout=30))  # a held-back event fails, not hangs
        before_the_cut = []
        while not (before_the_cut and before_the_cut[-1].choices[0].finish_reason):
            before_the_cut.append(next(chunks))
        release()
        after_the_cut = list(chunks)
    assert after_the_cut == [], "only the usage event came after the cut, and it is taken out"
    text = "".join(c.choices[0].delta.content or "" for c in before_the_cut)
    assert text == "Echo: one two three"
    assert provider.standin.requests[-1].body["stream_options"] == {"include_usage": True}


class serve_in_thread_hold:
    """Holds the stand-in's next stream after its first chunk (or just before `before`) until released."""

    def __init__(self, standin: StandIn, before: bytes | None = None) -> None:
        self.standin = standin
        self.before = before

    def __enter__(self):  # type: ignore[no-untyped-def]
        holder = {}

        def arm() -> None:
            holder["gate"] = self.standin.hold_next_stream(self.before)

        self.standin._loop.call_soon_threadsafe(arm)  # type: ignore[union-attr]
        return self.standin.release

    def __exit__(self, *exc: object) -> None:
        self.standin.release()


def test_failover_from_anthropic_to_gemini_retranslates_the_request(tmp_path: Path) -> None:
    claude, gemini = AnthropicStandIn(api_key=KEYS["claude"]), GeminiStandIn(api_key=KEYS["gemini"])
    with serve_in_thread(claude), serve_in_thread(gemini):
        dead = f"http://127.0.0.1:{free_port()}"
        # By cost: claude (answers 503), then claude-down (connection refused, same price), then gemini.
        providers = [
            provider_entry("claude", claude, defaultModel="claude-3-haiku-20240307"),
            {
                **provider_entry("claude", claude),
                "name": "claude-down",
                "baseUrl": dead,
                "defaultModel": "claude-3-haiku-20240307",
            },
            provider_entry("gemini", gemini, defaultModel="gemini-2.5-pro"),
        ]
        document = stack_document([], providers, routingStrategy="cost", maxFallbacks=2)
        with run_stack(document, tmp_path / "stack") as stack:
            client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="client-key", max_retries=0)

            claude.fail_next(503)
            reply = client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": "Hello there"}]
            )
            assert reply.headers["x-llm-router-target"] == "gemini"
            assert reply.parse().choices[0].message.content == "Echo: Hello there"
            assert claude.requests[-1].path == "/v1/messages"
            sent = gemini.requests[-1]
            assert sent.path == "/v1beta/models/gemini-2.5-pro:generateContent"
            assert sent.headers["x-goog-api-key"] == KEYS["gemini"]
            assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "Hello there"}]}]
            assert KEYS["claude"] not in str(sent.headers)
            metrics = httpx.get(f"{stack.url}/metrics", timeout=10).text
            assert 'llm_router_fallbacks_total{from="claude",reason="status_503",to="claude-down"} 1.0' in metrics
            assert 'llm_router_fallbacks_total{from="claude-down",reason="connect_failure",to="gemini"} 1.0' in metrics
