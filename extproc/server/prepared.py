"""First attempts the router's ext_proc prepared itself, waiting for Envoy's access log to say how they ended.

A request whose first target speaks OpenAI's format needs no translation either way: the router's ext_proc
rewrites it for that target in its own (second and last) reply, the upstream attempt filter is skipped for
that first try, and the response flows to the client as it comes (but for a stream's usage event the client
did not ask for: Envoy's Lua filter takes it out). Its status and usage (read by Envoy's `json_to_metadata`
filter, or its Lua filter for a stream) arrive a little later, batched, on Envoy's gRPC access log stream.

Bounded: an attempt whose log entry never comes (Envoy restarted, the log went to another replica) is closed
as cancelled once no request can still be running.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from extproc.server.attempt_exchange import AttemptExchange

GRACE_SECONDS = 30.0  # past the request timeout, for the log entry to arrive
MAX_PENDING = 100_000


class PreparedAttempts:
    def __init__(self, request_timeout: float) -> None:
        self.expire_after = request_timeout + GRACE_SECONDS
        self._pending: OrderedDict[str, tuple[float, AttemptExchange]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, request_id: str, attempt: AttemptExchange) -> None:
        now = time.monotonic()
        self._pending[request_id] = (now, attempt)
        self.expire(now)

    def take(self, request_id: str) -> AttemptExchange | None:
        entry = self._pending.pop(request_id, None)
        return entry[1] if entry else None

    def expire(self, now: float) -> None:
        while self._pending:
            added, attempt = next(iter(self._pending.values()))
            if now - added < self.expire_after and len(self._pending) <= MAX_PENDING:
                return
            self._pending.popitem(last=False)
            attempt.close()
