"""Rate and budget state: requests per minute per key (sliding 60 s window) and spend per tenant and period.

`MemoryLimits` serves one controller; `extproc.auth.redis_limits.RedisLimits` is the same contract shared by
every replica.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from extproc.config.model import BUDGET_PERIODS

RATE_WINDOW_SECONDS = 60.0


class StoreUnavailable(Exception):
    """The shared state could not be read or written; requests are refused rather than let through."""


@dataclass(frozen=True, slots=True)
class Window:
    """One budget period: [start, end) in Unix seconds, aligned to the epoch (UTC)."""

    period: str
    start: int
    end: int


def budget_window(period: str, now: float) -> Window:
    length = BUDGET_PERIODS[period]
    start = int(now // length) * length
    return Window(period, start, start + length)


class LimitStore(Protocol):
    async def take_request(self, key: str, limit: int) -> float:
        """Count one request of `key` if it is under `limit`: 0.0, else the seconds until it would be."""
        ...

    async def spent(self, tenant: str, window: Window) -> float:
        """The tenant's spend in the window, in USD."""
        ...

    def add_spend(self, tenant: str, window: Window, usd: float) -> None:
        """Add to the tenant's spend (without waiting for it to be stored)."""
        ...

    async def close(self) -> None: ...


class MemoryLimits:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._requests: dict[str, deque[float]] = {}
        self._spend: dict[tuple[str, str], tuple[int, float]] = {}  # (tenant, period) -> (window start, USD)

    async def take_request(self, key: str, limit: int) -> float:
        now = self._clock()
        times = self._requests.setdefault(key, deque())
        while times and times[0] <= now - RATE_WINDOW_SECONDS:
            times.popleft()
        if len(times) >= limit:
            return times[0] + RATE_WINDOW_SECONDS - now
        times.append(now)
        return 0.0

    async def spent(self, tenant: str, window: Window) -> float:
        start, usd = self._spend.get((tenant, window.period), (window.start, 0.0))
        return usd if start == window.start else 0.0

    def add_spend(self, tenant: str, window: Window, usd: float) -> None:
        current = self._spend.get((tenant, window.period))
        total = current[1] if current and current[0] == window.start else 0.0
        self._spend[(tenant, window.period)] = (window.start, total + usd)

    async def close(self) -> None:
        """Nothing to release."""
