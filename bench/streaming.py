"""Time to first byte of a streamed (SSE) chat completion, request by request on one keep-alive connection."""

from __future__ import annotations

import math
import socket
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

_HEADER_END = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class StreamTiming:
    headers_ms: float  # request sent -> end of the response headers
    first_event_ms: float  # request sent -> first `data:` bytes of the body: the user-visible TTFB
    total_ms: float  # request sent -> end of the response
    events: int


def response_complete(head: bytes, body: bytes) -> bool:
    """Whether `body` holds the whole response for these headers (content-length or chunked)."""
    headers = head.lower()
    for line in headers.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return body.endswith(b"0\r\n\r\n")


class StreamClient:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.timeout = timeout
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def request(self, body: bytes) -> StreamTiming:
        sock = self._connect()
        request = (
            f"POST {self.path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\ncontent-type: application/json\r\n"
            f"accept: text/event-stream\r\ncontent-length: {len(body)}\r\n\r\n"
        ).encode() + body
        start = time.perf_counter()
        sock.sendall(request)
        buffer = b""
        head: bytes | None = None
        headers_at = first_at = 0.0
        while True:
            data = sock.recv(65536)
            now = time.perf_counter()
            if not data:
                self.close()
                raise ConnectionError("connection closed mid-response")
            buffer += data
            if head is None and _HEADER_END in buffer:
                head, buffer = buffer.split(_HEADER_END, 1)
                headers_at = now
                if not head.startswith(b"HTTP/1.1 200"):
                    self.close()
                    raise RuntimeError(f"streaming request failed: {head[:200]!r} {buffer[:300]!r}")
            if head is not None:
                if not first_at and b"data:" in buffer:
                    first_at = now
                if response_complete(head, buffer):
                    break
        if not first_at or b"[DONE]" not in buffer:
            raise RuntimeError(f"stream without events or [DONE]: {buffer[:300]!r}")
        return StreamTiming(
            headers_ms=(headers_at - start) * 1000,
            first_event_ms=(first_at - start) * 1000,
            total_ms=(now - start) * 1000,
            events=buffer.count(b"data:"),
        )


@dataclass(frozen=True, slots=True)
class StreamSummary:
    requests: int
    events: int
    ttfb_p50_ms: float
    ttfb_p90_ms: float
    ttfb_p99_ms: float
    headers_p50_ms: float
    total_p50_ms: float


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def measure_stream(url: str, body: bytes, requests: int, warmup: int = 10, max_seconds: float = 60.0) -> StreamSummary:
    """`requests` serial streamed requests (after `warmup` unmeasured ones), stopping early at `max_seconds`."""
    client = StreamClient(url)
    try:
        for _ in range(warmup):
            client.request(body)
        timings: list[StreamTiming] = []
        deadline = time.monotonic() + max_seconds
        while len(timings) < requests and time.monotonic() < deadline:
            timings.append(client.request(body))
    finally:
        client.close()
    ttfb = [t.first_event_ms for t in timings]
    return StreamSummary(
        requests=len(timings),
        events=timings[-1].events,
        ttfb_p50_ms=percentile(ttfb, 50),
        ttfb_p90_ms=percentile(ttfb, 90),
        ttfb_p99_ms=percentile(ttfb, 99),
        headers_p50_ms=statistics.median(t.headers_ms for t in timings),
        total_p50_ms=statistics.median(t.total_ms for t in timings),
    )
