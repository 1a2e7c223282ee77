"""A bounded in-memory record of the nonces seen while their requests could still be accepted."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class NonceStore:
    """Remembers each nonce for `ttl` seconds; holds at most `capacity` of them.

    Entries are kept in arrival order with a fixed ttl, so the oldest is always the first to expire and
    eviction is O(1) per entry. When full of unexpired nonces it refuses new ones rather than forget a nonce
    that could still be replayed.
    """

    def __init__(self, ttl: float, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def add(self, nonce: str) -> bool | None:
        """True if the nonce is new (now recorded), False if seen before, None if the store is full."""
        now = self._clock()
        while self._expiry and next(iter(self._expiry.values())) <= now:
            self._expiry.popitem(last=False)
        if nonce in self._expiry:
            return False
        if len(self._expiry) >= self.capacity:
            return None
        self._expiry[nonce] = now + self.ttl
        return True
