"""Live status of every target, written by the pollers and read (never awaited) by the routing hot path."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class TargetStatus:
    healthy: bool
    queue_depth: int = 0  # requests waiting for a slot (llama.cpp `requests_deferred`)
    processing: int = 0  # requests in a slot (llama.cpp `requests_processing`)
    in_flight: int = 0  # requests this controller has sent and not yet seen finish
    measured_tokens_per_second: float | None = None
    measured_prompt_tokens_per_second: float | None = None
    total_slots: int | None = None
    context_window: int | None = None  # as the server itself reports it
    last_poll: float | None = None
    last_error: str | None = None

    # These are read for every cluster on every routing decision: comparisons, as a max() call costs ~3x more.

    @property
    def slots(self) -> int:
        """Parallel slots as the server reports them (at least 1)."""
        total = self.total_slots
        return total if total is not None and total > 1 else 1

    @property
    def busy(self) -> int:
        """Requests in or waiting for a slot: the server's view or ours, whichever is larger."""
        server = self.processing + self.queue_depth
        return self.in_flight if self.in_flight > server else server

    @property
    def waiting(self) -> int:
        """Requests queued for a slot (llama.cpp's `requests_deferred`, or our in-flight count beyond slots)."""
        beyond_slots = self.in_flight - self.slots
        waiting = beyond_slots if beyond_slots > self.queue_depth else self.queue_depth
        return waiting if waiting > 0 else 0

    failed_polls: int = 0

    def mark_polled(self, healthy: bool, error: str | None = None, *, definite: bool = False) -> None:
        """One poll's verdict. A single failed poll (a slow answer on a busy machine) does not take a healthy
        cluster out; `UNHEALTHY_AFTER` in a row, or a definite one (the server says it is loading), does.
        Envoy's own active health check stays the fast path for a dead cluster."""
        self.failed_polls = 0 if healthy else self.failed_polls + 1
        self.healthy = healthy or (self.healthy and not definite and self.failed_polls < UNHEALTHY_AFTER)
        self.last_error = error
        self.last_poll = time.time()


UNHEALTHY_AFTER = 2  # failed polls in a row


class StatusBoard:
    """One `TargetStatus` per target name. Clusters start unhealthy until a poll proves them ready."""

    def __init__(self, cluster_names: list[str], provider_names: list[str]) -> None:
        self._status = {name: TargetStatus(healthy=False) for name in cluster_names}
        self._status.update({name: TargetStatus(healthy=True) for name in provider_names})

    def __getitem__(self, name: str) -> TargetStatus:
        return self._status[name]

    def carry_over(self, previous: StatusBoard) -> None:
        """Keep the live status of targets that exist in both boards (a config reload)."""
        for name in self._status.keys() & previous._status.keys():
            self._status[name] = previous._status[name]

    def items(self) -> list[tuple[str, TargetStatus]]:
        return list(self._status.items())
