"""The contract every translator fulfils: OpenAI chat-completions in, a target's wire format out, and back.

A translator is stateless and idempotent: every attempt (and every retry) builds its upstream request from
the client's original body, so a failover to another target simply translates again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage as a target reported it, in OpenAI terms (thinking tokens count as completion)."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a translator needs to know about one target."""

    base_path: str  # path prefix the API lives under, without a trailing slash ("" or "/v1" or "/gw/openai/v1")
    model: str  # the model name the target expects
    api_key: str | None  # the target's credential; never the client's


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    path: str
    headers: tuple[tuple[str, str], ...]  # headers to set on the upstream request (auth, version, type)
    body: bytes


@dataclass(frozen=True, slots=True)
class TranslatedResponse:
    status: int
    body: bytes  # OpenAI-shaped: a chat.completion object, or {"error": {...}} for a failure
    usage: Usage | None
    retry_after: str | None = None  # passed on to the client when the target sent one


class StreamTranslator(Protocol):
    """Turns a target's streamed response into OpenAI `chat.completion.chunk` SSE, chunk by chunk.

    Network chunks need not line up with SSE events: implementations buffer partial events.
    """

    usage: Usage | None

    def feed(self, chunk: bytes) -> bytes:
        """Bytes from the target in, OpenAI SSE bytes out (possibly empty)."""
        ...

    def finish(self) -> bytes:
        """Called once at end of stream; returns whatever is still owed to the client (e.g. `data: [DONE]`)."""
        ...


class Translator(Protocol):
    """One (client format = OpenAI chat completions, target format) pair."""

    api: str  # "openai", "anthropic" or "gemini"

    def build_request(self, body: dict, endpoint: Endpoint) -> UpstreamRequest: ...

    def translate_response(self, status: int, body: bytes, model: str) -> TranslatedResponse: ...

    def stream_translator(self, model: str, include_usage: bool) -> StreamTranslator: ...
