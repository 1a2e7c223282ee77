"""What the provider stand-ins share: an aiohttp server on 127.0.0.1, a request log, scripted faults and the
deterministic "model" that writes their answers."""

from __future__ import annotations

import asyncio
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import orjson
from aiohttp import web

STARTUP_TIMEOUT = 10.0  # seconds


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lower-case names
    body: Any  # the decoded JSON body; None when there was none or it was not JSON


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete JSON response."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StreamReply:
    """A 200 streamed response; each item is written to the network separately."""

    writes: list[bytes]
    content_type: str = "text/event-stream"


@dataclass(frozen=True, slots=True)
class _Fault:
    kind: Literal["status", "hang", "disconnect"]
    reply: Reply | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """What the stand-in model says: the text, its stream pieces, and why it stopped."""

    text: str
    pieces: list[str]
    output_tokens: int
    stop: Literal["end", "length", "stop_sequence"]
    stop_sequence: str | None = None


def count_tokens(texts: Sequence[str]) -> int:
    """The stand-ins' tokenizer: one token per whitespace-separated word."""
    return sum(len(text.split()) for text in texts)


def complete(prompt: str, limit: int | None = None, stops: Sequence[str] = ()) -> Completion:
    """The deterministic answer to `prompt`, cut at the first stop sequence or after `limit` tokens."""
    text = f"Echo: {prompt}" if prompt else "Hello! How can I help?"
    cuts = [(text.index(stop), stop) for stop in stops if stop and stop in text]
    stop: Literal["end", "length", "stop_sequence"] = "end"
    sequence = None
    if cuts:
        position, sequence = min(cuts)
        text, stop = text[:position], "stop_sequence"
    pieces = re.findall(r"\S+\s*", text)
    if limit is not None and len(pieces) > limit:
        pieces, stop, sequence = pieces[:limit], "length", None
        text = "".join(pieces).rstrip()
    return Completion(text, pieces, len(pieces), stop, sequence)


def tool_input(schema: dict[str, Any] | None, prompt: str) -> dict[str, Any]:
    """Arguments for a tool call: the prompt as the first declared property."""
    properties = list((schema or {}).get("properties") or {})
    return {properties[0]: prompt} if properties else {}


def split_json(value: Any) -> list[str]:
    """A JSON document cut into two fragments, the way providers stream tool arguments."""
    text = orjson.dumps(value).decode()
    middle = len(text) // 2
    return [text[:middle], text[middle:]]


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(payload), headers or {})


Handler = Callable[[web.Request, Any], Awaitable[Reply | StreamReply]]


class StandIn:
    """An aiohttp server speaking one provider's API; subclasses add the routes and the wire format.

    Every request is recorded before anything else happens. Scripted faults then apply to the next requests
    in order, before authentication, as they would at a provider's edge.
    """

    def __init__(self, api_key: str = "test-key") -> None:
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.origin = ""  # http://127.0.0.1:<port>
        self._faults: deque[_Fault] = deque()
        self._gate: asyncio.Event | None = None  # for the next streamed response
        self._held: asyncio.Event | None = None  # the latest gate, for `release`
        self._pause_before: bytes | None = None  # where the next streamed response waits for its gate
        self._closing = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    # --- provider specifics -------------------------------------------------------------------------

    sdk_path = ""  # what an SDK's base_url adds to the origin

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path, handler) for each endpoint."""
        raise NotImplementedError

    def error(self, status: int, message: str) -> Reply:
        """An error response in the provider's own shape."""
        raise NotImplementedError

    def authenticate(self, request: web.Request) -> Reply | None:
        """The provider's error response when the request's credentials are missing or wrong."""
        raise NotImplementedError

    def failure(self, status: int, retry_after: str | None) -> Reply:
        """A scripted failure: by default the provider's error with a `retry-after` header."""
        reply = self.error(status, "scripted failure")
        return Reply(status, reply.body, {**reply.headers, **({"retry-after": retry_after} if retry_after else {})})

    # --- scripting ----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The base URL the provider's official SDK is given."""
        return self.origin + self.sdk_path

    def fail_next(
        self, status: int, *, times: int = 1, body: bytes | None = None, retry_after: str | None = None
    ) -> None:
        """The next `times` requests get `status` with `body` (default: the provider's error for it)."""
        reply = self.failure(status, retry_after)
        self._faults.extend([_Fault("status", Reply(status, body or reply.body, reply.headers))] * times)

    def hang_next(self, *, times: int = 1) -> None:
        """The next `times` requests are never answered (until the stand-in stops)."""
        self._faults.extend([_Fault("hang")] * times)

    def disconnect_next(self, *, times: int = 1) -> None:
        """The next `times` responses are cut: the connection closes after the first chunk or half the body."""
        self._faults.extend([_Fault("disconnect")] * times)

    def hold_next_stream(self, before: bytes | None = None) -> asyncio.Event:
        """The next streamed response pauses after its first chunk, or just before the first `before` in it
        (the write that holds it is cut in two there), until the returned event is set."""
        self._gate = self._held = asyncio.Event()
        self._pause_before = before
        return self._gate

    def release(self) -> None:
        """Sets the held stream's event; safe to call from any thread."""
        if self._held is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._held.set)

    # --- serving ------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        for method, path, handler in self.routes():
            app.router.add_route(method, path, self._wrap(handler))
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.origin = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._closing.set()
        if self._held is not None:
            self._held.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> StandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                body = None
            headers = {name.lower(): value for name, value in request.headers.items()}
            self.requests.append(RecordedRequest(request.method, request.path_qs, headers, body))
            fault = self._faults.popleft() if self._faults else None
            if fault is not None and fault.kind == "hang":
                await self._closing.wait()
                return _drop(request)
            if fault is not None and fault.reply is not None:
                return await self._send(request, fault.reply, cut=False)
            reply = self.authenticate(request)
            if reply is None:
                reply = (
                    await handler(request, body)
                    if raw and body is not None
                    else self.error(400, "the request body is not valid JSON")
                )
            return await self._send(request, reply, cut=fault is not None)

        return serve

    async def _send(self, request: web.Request, reply: Reply | StreamReply, *, cut: bool) -> web.StreamResponse:
        if isinstance(reply, Reply) and not cut:
            return web.Response(
                status=reply.status, body=reply.body, headers=reply.headers, content_type="application/json"
            )
        if isinstance(reply, Reply):
            response = web.StreamResponse(status=reply.status, headers=reply.headers)
            response.content_type = "application/json"
            response.content_length = len(reply.body)
            await response.prepare(request)
            await response.write(reply.body[: len(reply.body) // 2])
            return _drop(request)
        gate, self._gate = self._gate, None
        writes, pause_after = _cut_before(reply.writes, self._pause_before if gate else None)
        response = web.StreamResponse(headers={"cache-control": "no-cache"})
        response.content_type = reply.content_type
        await response.prepare(request)
        for number, data in enumerate(writes):
            await response.write(data)
            if number == 0 and cut:
                return _drop(request)
            if number == pause_after and gate is not None:
                await gate.wait()
        await response.write_eof()
        return response


def _cut_before(writes: list[bytes], marker: bytes | None) -> tuple[list[bytes], int]:
    """`writes` with the one holding `marker` cut in two just before it, and the index of the write a held
    stream pauses after (the first, without a marker or when it is not found)."""
    for number, data in enumerate(writes):
        at = data.find(marker) if marker else -1
        if at > 0:
            return [*writes[:number], data[:at], data[at:], *writes[number + 1 :]], number
    return writes, 0


@dataclass(frozen=True, slots=True)
class Exchange:
    """A response as a client received it, body chunks as the network delivered them."""

    status: int
    headers: dict[str, str]  # lower-case names
    chunks: list[bytes]

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


async def exchange(origin: str, path: str, headers: Iterable[tuple[str, str]], body: bytes) -> Exchange:
    """POST `body` to `origin + path`, the way the data plane sends a translated request upstream."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(origin + path, headers=list(headers), data=body) as response,
    ):
        chunks = [chunk async for chunk in response.content.iter_any()]
        received = {name.lower(): value for name, value in response.headers.items()}
        return Exchange(response.status, received, chunks)


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection under the response, like a crashed or reset upstream."""
    if request.transport is not None:
        request.transport.abort()
    raise asyncio.CancelledError


@contextmanager
def loop_thread(name: str) -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in its own thread (for servers that synchronous tests and SDKs talk to)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STARTUP_TIMEOUT)
        loop.close()


@contextmanager
def serve_in_thread(standin: StandIn) -> Iterator[str]:
    """Run `standin` in its own event-loop thread, for synchronous tests and SDKs; yields its base URL."""
    with loop_thread(f"{type(standin).__name__}-loop") as loop:
        asyncio.run_coroutine_threadsafe(standin.start(), loop).result(STARTUP_TIMEOUT)
        try:
            yield standin.base_url
        finally:
            asyncio.run_coroutine_threadsafe(standin.stop(), loop).result(STARTUP_TIMEOUT)
