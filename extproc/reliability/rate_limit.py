"""Requests and tokens per minute for one target, over a sliding 60-second window.

Tokens are counted from the estimate when a request is sent and corrected by the usage the target reported.
"""

from __future__ import annotations

import time
from collections import deque

WINDOW_SECONDS = 60.0


class RateLimit:
    __slots__ = ("_requests", "_token_events", "_tokens", "requests_per_minute", "tokens_per_minute")

    def __init__(self, requests_per_minute: int | None, tokens_per_minute: int | None) -> None:
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._requests: deque[float] = deque()
        self._token_events: deque[tuple[float, int]] = deque()
        self._tokens = 0

    def limited(self, tokens: int, now: float | None = None) -> bool:
        """Whether one more request of `tokens` would go over a limit."""
        self._expire(time.monotonic() if now is None else now)
        if self.requests_per_minute is not None and len(self._requests) >= self.requests_per_minute:
            return True
        return (
            self.tokens_per_minute is not None
            and bool(self._token_events)
            and self._tokens + tokens > self.tokens_per_minute
        )

    def retry_after(self, now: float | None = None) -> float:
        """Seconds until the oldest counted request leaves the window."""
        now = time.monotonic() if now is None else now
        self._expire(now)
        oldest = min(
            ([self._requests[0]] if self._requests else [])
            + ([self._token_events[0][0]] if self._token_events else []),
            default=now - WINDOW_SECONDS,
        )
        return max(oldest + WINDOW_SECONDS - now, 0.0)

    def add(self, tokens: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._requests.append(now)
        self._count_tokens(now, tokens)

    def correct(self, estimated: int, actual: int) -> None:
        """Replace a request's estimate with what it really used (the difference counts from now on)."""
        self._count_tokens(time.monotonic(), actual - estimated)

    def _count_tokens(self, now: float, tokens: int) -> None:
        if self.tokens_per_minute is not None:
            self._token_events.append((now, tokens))
            self._tokens += tokens

    def _expire(self, now: float) -> None:
        horizon = now - WINDOW_SECONDS
        while self._requests and self._requests[0] <= horizon:
            self._requests.popleft()
        while self._token_events and self._token_events[0][0] <= horizon:
            self._tokens -= self._token_events.popleft()[1]
