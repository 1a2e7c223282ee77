"""Server-sent events: an incremental parser for targets' streams, the OpenAI `data:` encoder, and the
skeleton the stream translators share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from extproc.providers.base import Usage
from extproc.providers.errors import error_object

DONE = b"data: [DONE]\n\n"
_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str  # the `event:` name; "message" when the event had none
    data: str  # the `data:` lines joined with "\n"


class SseParser:
    """Bytes in, complete events out; a line or event split across chunks waits for the rest.

    Follows the WHATWG rules: lines end in LF, CR or CRLF; `:` starts a comment; one space after the
    colon is dropped; an event ends at a blank line and is dispatched only if it had data; `id` and
    `retry` are ignored; an unterminated event at end of stream is discarded.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk
        events: list[SseEvent] = []
        start = 0
        for eol in _EOL.finditer(self._buffer):
            if eol.group() == b"\r" and eol.end() == len(self._buffer):
                break  # perhaps the first half of a CRLF split across chunks
            event = self._line(self._buffer[start : eol.start()].decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
            start = eol.end()
        del self._buffer[:start]
        return events

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            event = SseEvent(self._event or "message", "\n".join(self._data)) if self._data else None
            self._event, self._data = "", []
            return event
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


class MalformedEvent(ValueError):
    """A target's stream event whose data is not the JSON object its API promises."""


def event_object(event: SseEvent) -> dict[str, Any]:
    """An event's data as a JSON object."""
    try:
        value = orjson.loads(event.data)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(event.data) from exc
    if not isinstance(value, dict):
        raise MalformedEvent(event.data)
    return value


def encode(payload: dict[str, Any]) -> bytes:
    """One OpenAI SSE event: `data: {...}` and the blank line."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class SseTranslator:
    """What the stream translators share: parse the target's SSE, translate event by event, close out.

    Subclasses implement `_translate`; the stream is closed by `_done` (`data: [DONE]`) or `_stop` (a final
    error event), after which further input is ignored. A stream that ends before either is reported to
    the client as an error rather than silently completed.
    """

    def __init__(self, include_usage: bool) -> None:
        self.usage: Usage | None = None
        self._include_usage = include_usage
        self._parser = SseParser()
        self._closed = False

    def feed(self, chunk: bytes) -> bytes:
        if self._closed:
            return b""
        out = bytearray()
        for event in self._parser.feed(chunk):
            try:
                out += self._translate(event)
            except MalformedEvent:
                out += self._fail(502, "the upstream target sent a malformed stream event")
            if self._closed:
                break
        return bytes(out)

    def finish(self) -> bytes:
        return b"" if self._closed else self._end()

    def _translate(self, event: SseEvent) -> bytes:
        raise NotImplementedError

    def _end(self) -> bytes:
        """The target's stream ended without its own end marker."""
        return self._fail(502, "the upstream target's stream ended before the response was complete")

    def _done(self) -> bytes:
        self._closed = True
        return DONE

    def _stop(self, payload: dict[str, Any]) -> bytes:
        self._closed = True
        return encode(payload)

    def _fail(self, status: int, message: str, code: str | None = None) -> bytes:
        return self._stop(error_object(status, message, code=code))
