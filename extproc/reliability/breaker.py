"""A circuit breaker per target: a failing target stops being chosen at all, then is probed back in.

closed --(N consecutive failures)--> open --(cooldown elapsed)--> half-open: one probe at a time
half-open --(probe succeeds)--> closed;  half-open --(probe fails)--> open again.
"""

from __future__ import annotations

import time
from enum import StrEnum


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    __slots__ = ("_consecutive", "_opened_at", "_probing", "consecutive_failures", "cooldown")

    def __init__(self, consecutive_failures: int, cooldown: float) -> None:
        self.consecutive_failures = consecutive_failures
        self.cooldown = cooldown
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False

    def state(self, now: float | None = None) -> State:
        if self._opened_at is None:
            return State.CLOSED
        now = time.monotonic() if now is None else now
        return State.OPEN if now - self._opened_at < self.cooldown else State.HALF_OPEN

    def blocks(self, now: float | None = None) -> bool:
        """Whether a new request must not be sent: open, or half-open with its probe still out."""
        if self._opened_at is None:  # closed, answered without `state()`: asked for every target on every request
            return False
        state = self.state(now)
        return state is State.OPEN or (state is State.HALF_OPEN and self._probing)

    def on_send(self, now: float | None = None) -> None:
        if self.state(now) is State.HALF_OPEN:
            self._probing = True

    def record(self, success: bool, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._probing = False
        if success:
            self._consecutive = 0
            self._opened_at = None
            return
        self._consecutive += 1
        if self._opened_at is not None or self._consecutive >= self.consecutive_failures:
            self._opened_at = now
