"""Admission of one request: who is calling (key -> tenant), which strategy it may ask for, and whether it is
within its requests per minute and its tenant's dollar budget. Spend is recorded here after the fact.

A budget is checked before a request and charged with the request's actual cost after it, so a tenant can go
over by the requests in flight when the budget runs out.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from extproc.auth.keyring import KeyRing
from extproc.auth.limits import LimitStore, MemoryLimits, StoreUnavailable, budget_window
from extproc.config.model import ApiKey, AuthConfig
from extproc.headers import STRATEGY_HEADER
from extproc.metrics import Metrics

log = logging.getLogger(__name__)

KEY_HEADERS = ("authorization", "x-api-key")  # where a client's key may come from


@dataclass(frozen=True, slots=True)
class Denial:
    status: int
    reason: str  # the metric label
    message: str
    code: str
    type: str | None = None  # default: OpenAI's type for the status
    retry_after: int | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    key: ApiKey
    strategy: str | None = None  # a strategy header to set, for a key limited to some strategies that named none


class Gate:
    def __init__(self, auth: AuthConfig, default_strategy: str, metrics: Metrics, previous: Gate | None = None) -> None:
        """After a config reload, `previous`'s rate and budget state is kept when the store is the same."""
        self.enabled = auth.enabled
        self.keys = KeyRing(auth)
        self.redis_url = auth.redis_url if auth.enabled else None
        self._retired: asyncio.Task[None] | None = None  # closing the previous store
        if previous is not None and previous.redis_url == self.redis_url:
            self.store = previous.store
        else:
            self.store = _store(self.redis_url)
            if previous is not None:
                self._retired = asyncio.get_running_loop().create_task(previous.close())
        self._default_strategy = default_strategy
        self._metrics = metrics

    async def admit(self, headers: Mapping[str, str]) -> Admission | Denial:
        secret = presented_key(headers)
        if secret is None:
            message = "You didn't provide an API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'."
            return self._deny(None, Denial(401, "missing_key", message, "missing_api_key"))
        key = self.keys.lookup(secret)
        if key is None:
            return self._deny(None, Denial(401, "invalid_key", "Incorrect API key provided.", "invalid_api_key"))
        requested = headers.get(STRATEGY_HEADER)
        allowed = key.allowed_strategies
        if allowed is not None and requested is not None and requested not in allowed:
            message = f"The strategy {requested!r} is not allowed for this API key (allowed: {', '.join(allowed)})."
            return self._deny(key, Denial(403, "strategy_not_allowed", message, "strategy_not_allowed"))
        try:
            denial = await self._over_budget(key) or await self._over_rate(key)
        except StoreUnavailable as exc:
            log.error("rate and budget store unavailable (%s): request refused", exc)
            message = "The router cannot check this API key's limits right now; retry shortly."
            return self._deny(key, Denial(503, "store_unavailable", message, "service_unavailable"))
        if denial is not None:
            return self._deny(key, denial)
        if allowed is None or requested is not None:
            return Admission(key)
        # Pinned, so that nothing downstream (an A/B experiment) picks a strategy the key may not use.
        return Admission(key, self._default_strategy if self._default_strategy in allowed else allowed[0])

    def record_spend(self, tenant: str, usd: float) -> None:
        """Charge a finished attempt's actual cost to its tenant's budget (if it has one)."""
        budget = self.keys.budget(tenant)
        if budget is not None and usd > 0:
            self.store.add_spend(tenant, budget_window(budget[1], time.time()), usd)

    async def close(self) -> None:
        await self.store.close()

    async def _over_budget(self, key: ApiKey) -> Denial | None:
        budget = self.keys.budget(key.tenant)
        if budget is None:
            return None
        limit, period = budget
        now = time.time()
        window = budget_window(period, now)
        spent = await self.store.spent(key.tenant, window)
        if spent < limit:
            return None
        resets = datetime.fromtimestamp(window.end, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = (
            f"Tenant {key.tenant!r}: budget of ${_usd(limit)} for the period ({period}) exhausted "
            f"(spent ${_usd(spent)}); resets at {resets}."
        )
        retry = math.ceil(window.end - now)
        return Denial(429, "budget_exhausted", message, "budget_exhausted", "insufficient_quota", retry)

    async def _over_rate(self, key: ApiKey) -> Denial | None:
        if key.requests_per_minute is None:
            return None
        wait = await self.store.take_request(key.name, key.requests_per_minute)
        if not wait:
            return None
        retry = max(math.ceil(wait), 1)
        message = (
            f"Rate limit of {key.requests_per_minute} requests per minute reached for this API key; retry in {retry} s."
        )
        return Denial(429, "rate_limited", message, "rate_limit_exceeded", retry_after=retry)

    def _deny(self, key: ApiKey | None, denial: Denial) -> Denial:
        tenant = key.tenant if key else ""
        self._metrics.auth_denials.labels(tenant, denial.reason).inc()
        log.info("request refused: %s (key %s)", denial.reason, key.name if key else "unknown")
        return denial


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The client's key: `Authorization: Bearer <key>`, else `x-api-key`."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key", "").strip() or None


def _usd(amount: float) -> str:
    return f"{amount:.6f}".rstrip("0").rstrip(".")


def _store(redis_url: str | None) -> LimitStore:
    if redis_url:
        from extproc.auth.redis_limits import RedisLimits

        return RedisLimits(redis_url)
    return MemoryLimits()
