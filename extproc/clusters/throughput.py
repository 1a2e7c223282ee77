"""Tokens per second over a sliding window, from a pair of monotonically growing counters."""

from __future__ import annotations

from collections import deque


class ThroughputWindow:
    """Rate = delta(tokens) / delta(busy seconds) across the samples of the last `window` seconds.

    llama.cpp counts tokens and the seconds spent producing them; their ratio over the window is the
    speed a request gets, the same figure as its own `predicted_tokens_seconds` gauge but windowed.
    A counter that goes backwards (server restart) resets the window.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._samples: deque[tuple[float, float, float]] = deque()

    def add(self, now: float, tokens: float, seconds: float) -> None:
        if self._samples and (tokens < self._samples[-1][1] or seconds < self._samples[-1][2]):
            self._samples.clear()
        self._samples.append((now, tokens, seconds))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Tokens per busy second, or None while the window has seen no work."""
        if len(self._samples) < 2:
            return None
        _, first_tokens, first_seconds = self._samples[0]
        _, last_tokens, last_seconds = self._samples[-1]
        busy = last_seconds - first_seconds
        if busy <= 0 or last_tokens <= first_tokens:
            return None
        return (last_tokens - first_tokens) / busy
