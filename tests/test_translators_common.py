"""The SSE parser, the OpenAI error helpers and the registry; plus helpers the translator tests share."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.providers.anthropic import AnthropicTranslator
from extproc.providers.base import StreamTranslator
from extproc.providers.errors import (
    client_status,
    error_response,
    openai_error,
    provider_error,
)
from extproc.providers.gemini import GeminiTranslator
from extproc.providers.openai_compat import OpenAICompatTranslator
from extproc.providers.registry import translator_for
from extproc.providers.sse import DONE, SseEvent, SseParser, encode

FROZEN_TIME = 1_700_000_000

# --- helpers for the translator tests ---------------------------------------------------------------


def sse(*events: tuple[str | None, Any], eol: str = "\n") -> bytes:
    """An upstream SSE stream: (event name or None, JSON data) per event."""
    lines = []
    for name, data in events:
        if name:
            lines.append(f"event: {name}{eol}")
        lines.append(f"data: {orjson.dumps(data).decode()}{eol}{eol}")
    return "".join(lines).encode()


def cut(raw: bytes, points: Iterable[int]) -> list[bytes]:
    """`raw` split at the given offsets."""
    edges = [0, *sorted(set(points)), len(raw)]
    return [raw[start:end] for start, end in itertools.pairwise(edges)]


def run_stream(stream: StreamTranslator, chunks: Iterable[bytes]) -> bytes:
    return b"".join(stream.feed(chunk) for chunk in chunks) + stream.finish()


def client_events(out: bytes) -> list[Any]:
    """What an OpenAI client reads from `out`: each event's JSON, or the string "[DONE]"."""
    events = SseParser().feed(out)
    return [event.data if event.data == "[DONE]" else orjson.loads(event.data) for event in events]


@contextmanager
def frozen_time() -> Iterator[None]:
    with mock.patch("time.time", return_value=FROZEN_TIME):
        yield


def split_invariance(make: Callable[[], StreamTranslator], raw: bytes) -> Callable[..., None]:
    """A hypothesis test: any split of `raw` into network chunks gives the client the same bytes."""
    with frozen_time():
        whole = run_stream(make(), [raw])

    @given(points=st.lists(st.integers(min_value=0, max_value=len(raw)), max_size=40))
    def check(points: list[int]) -> None:
        with frozen_time():
            assert run_stream(make(), cut(raw, points)) == whole

    return check


# --- the SSE parser ---------------------------------------------------------------------------------

STREAM = (
    b": a comment the parser ignores\n"
    b"event: message_start\n"
    b'data: {"a": 1}\n'
    b"\n"
    b"data: first line\n"
    b"data:second line\n"
    b"id: 7\n"
    b"retry: 1000\n"
    b"\n"
    b"event: nothing\n"
    b"\n"
    b"data:  two spaces\r\n\r\n"
    b"data: caf\xc3\xa9\r\rdata: [DONE]\n\n"
)
EXPECTED = [
    SseEvent("message_start", '{"a": 1}'),
    SseEvent("message", "first line\nsecond line"),
    SseEvent("message", " two spaces"),
    SseEvent("message", "café"),
    SseEvent("message", "[DONE]"),
]


def test_parser_reads_names_multiline_data_comments_and_every_line_ending() -> None:
    assert SseParser().feed(STREAM) == EXPECTED


def test_parser_waits_for_the_blank_line_and_discards_an_unterminated_event() -> None:
    parser = SseParser()
    assert parser.feed(b"data: partial") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\n") == [SseEvent("message", "partial")]
    assert parser.feed(b"data: never finished\n") == []


def test_parser_holds_a_trailing_cr_that_may_start_a_crlf() -> None:
    parser = SseParser()
    assert parser.feed(b"data: x\r") == []
    assert parser.feed(b"\n\r") == []
    assert parser.feed(b"\n") == [SseEvent("message", "x")]


def test_parser_splits_anywhere_byte_by_byte() -> None:
    parser = SseParser()
    assert [event for byte in range(len(STREAM)) for event in parser.feed(STREAM[byte : byte + 1])] == EXPECTED


@given(points=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_parser_gives_the_same_events_however_the_stream_is_split(points: list[int]) -> None:
    parser = SseParser()
    assert [event for chunk in cut(STREAM, points) for event in parser.feed(chunk)] == EXPECTED


def test_encode_writes_one_openai_data_event() -> None:
    assert encode({"a": "é"}) == b'data: {"a":"\xc3\xa9"}\n\n'
    assert DONE == b"data: [DONE]\n\n"


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "server_error"),
        (502, "server_error"),
        (503, "server_error"),
    ],
)
def test_openai_error_defaults_the_type_by_status(status: int, kind: str) -> None:
    body = orjson.loads(openai_error(status, "went wrong"))
    assert body == {"error": {"message": "went wrong", "type": kind, "param": None, "code": None}}


def test_openai_error_takes_explicit_type_code_and_param() -> None:
    body = orjson.loads(openai_error(400, "bad", type="custom", code="invalid_strategy", param="x"))
    assert body["error"] == {"message": "bad", "type": "custom", "param": "x", "code": "invalid_strategy"}


@pytest.mark.parametrize(
    ("upstream", "client"),
    [(400, 400), (401, 401), (403, 403), (404, 404), (413, 413), (429, 429), (500, 502), (502, 502),
     (503, 503), (504, 502), (529, 503)],
)  # fmt: skip
def test_target_statuses_map_for_the_client(upstream: int, client: int) -> None:
    assert client_status(upstream) == client


def test_error_response_keeps_retry_after_and_maps_the_status() -> None:
    response = error_response(529, "Overloaded", code="overloaded_error", retry_after="12")
    assert (response.status, response.retry_after, response.usage) == (503, "12", None)
    assert orjson.loads(response.body)["error"]["code"] == "overloaded_error"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "m1", "type": "invalid_request_error"}}', "m1"),
        (b'{"type": "error", "error": {"type": "overloaded_error", "message": "m2"}}', "m2"),
        (b'[{"error": {"code": 429, "message": "m3", "status": "RESOURCE_EXHAUSTED"}}]', "m3"),
        (b'{"error": "m4"}', "m4"),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "the upstream target answered HTTP 502"),
        (b'{"detail": "nope"}', "the upstream target answered HTTP 502"),
    ],
)
def test_provider_error_finds_the_message_in_any_shape(body: bytes, message: str) -> None:
    assert provider_error(502, body)["message"] == message


# --- registry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "kind"),
    [("openai", OpenAICompatTranslator), ("anthropic", AnthropicTranslator), ("gemini", GeminiTranslator)],
)
def test_registry_maps_each_api_to_its_translator(api: str, kind: type) -> None:
    translator = translator_for(api)
    assert isinstance(translator, kind)
    assert translator.api == api


def test_registry_rejects_an_unknown_api() -> None:
    with pytest.raises(ValueError, match="bedrock"):
        translator_for("bedrock")
