"""Attempts that ended with a status Envoy may retry, held briefly: if the next attempt of the same request
reaches this controller it continues their record, otherwise the held record is the request's last word.

In-process and bounded. With several controller replicas the next attempt may land on another one; then
this replica writes its record when the grace period ends and the other writes the final one (same request
id, more attempts): consumers keep the record with the most attempts.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_HELD = 10_000


@dataclass(slots=True)
class Held:
    record: dict[str, Any]  # what is logged if no further attempt shows up
    seen: dict[int, tuple[str, int]]  # attempt number -> (target, status) of the attempts so far
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class Journal:
    def __init__(self, emit: Callable[[dict[str, Any]], None], grace: float) -> None:
        self._emit = emit
        self.grace = grace
        self._held: OrderedDict[str, Held] = OrderedDict()

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, request_id: str, held: Held) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop to wait on: nothing can continue the record
            self._emit(held.record)
            return
        self._release(request_id)
        held.timer = loop.call_later(self.grace, self._release, request_id)
        self._held[request_id] = held
        while len(self._held) > MAX_HELD:
            self._release(next(iter(self._held)))

    def take(self, request_id: str) -> Held | None:
        """The held attempts of a request that is being retried here (no longer to be logged on their own)."""
        held = self._held.pop(request_id, None)
        if held is not None and held.timer is not None:
            held.timer.cancel()
        return held

    def flush(self) -> None:
        while self._held:
            self._release(next(iter(self._held)))

    def _release(self, request_id: str) -> None:
        held = self.take(request_id)
        if held is not None:
            self._emit(held.record)
