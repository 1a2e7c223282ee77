"""Per-target circuit breakers and rate limits, consulted by the router and fed by each attempt."""

from __future__ import annotations

import time
from collections.abc import Iterable

from extproc.config.model import RouterConfig
from extproc.reliability.breaker import CircuitBreaker, State
from extproc.reliability.rate_limit import RateLimit
from extproc.routing.targets import Target

CIRCUIT_OPEN = "circuit open"
RATE_LIMITED = "rate limited"
# Answers that say the target failed, not the request: it refused the router's own credentials (a client's never
# travel to a target), it is over its rate limit, or it broke (any 5xx). Envoy moves the request on to the next
# target on these, and they count against the target's circuit breaker.
TARGET_FAILURE_STATUSES = frozenset({401, 403, 429})


def is_target_failure(status: int) -> bool:
    return status in TARGET_FAILURE_STATUSES or status >= 500


class TargetGuards:
    def __init__(self, targets: Iterable[Target], router: RouterConfig) -> None:
        self.breakers: dict[str, CircuitBreaker] = {}
        self.limits: dict[str, RateLimit] = {}
        for target in targets:
            self.breakers[target.name] = CircuitBreaker(router.breaker_failures, router.breaker_cooldown)
            if target.limits.requests_per_minute or target.limits.tokens_per_minute:
                self.limits[target.name] = RateLimit(target.limits.requests_per_minute, target.limits.tokens_per_minute)

    def skip_reason(self, name: str, tokens: int, now: float | None = None) -> str | None:
        now = time.monotonic() if now is None else now
        if self.breakers[name].blocks(now):
            return CIRCUIT_OPEN
        limit = self.limits.get(name)
        if limit is not None and limit.limited(tokens, now):
            return RATE_LIMITED
        return None

    def retry_after(self, names: Iterable[str]) -> float:
        """Seconds until the first of these rate-limited targets has room again."""
        waits = [self.limits[n].retry_after() for n in names if n in self.limits]
        return min(waits, default=1.0)

    def on_send(self, name: str, tokens: int) -> None:
        self.breakers[name].on_send()
        limit = self.limits.get(name)
        if limit is not None:
            limit.add(tokens)

    def on_outcome(self, name: str, status: int | None) -> None:
        """An attempt's result: a status, or None when the target could not be reached at all."""
        failed = status is None or is_target_failure(status)
        self.breakers[name].record(success=not failed)

    def on_usage(self, name: str, estimated: int, actual: int) -> None:
        limit = self.limits.get(name)
        if limit is not None:
            limit.correct(estimated, actual)

    def state(self, name: str) -> State:
        return self.breakers[name].state()
