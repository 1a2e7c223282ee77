"""Rate and budget state in Redis, shared by every controller replica; each update is atomic.

Requests per minute: a sorted set of request times per key, trimmed, counted and added to in one Lua script
on the Redis server's clock (so replicas' clocks need not agree). Spend: INCRBYFLOAT on one key per tenant
and period window, expiring an hour after the window ends. Spend is written behind the requests: amounts
wait in process and go out in one MULTI/EXEC per flush, retried until Redis takes them (a flush whose reply
was lost may count twice: budgets err on the safe side).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from extproc.auth.limits import RATE_WINDOW_SECONDS, StoreUnavailable, Window

log = logging.getLogger(__name__)

PREFIX = "llm-router:"
TIMEOUT_SECONDS = 1.0  # per command, and waiting for a pooled connection (Envoy waits 2 s for a check)
MAX_CONNECTIONS = 32
RETRY_SECONDS = 1.0  # between attempts to write spend while Redis is unreachable
CLOSE_SECONDS = 2.0  # how long closing waits for unwritten spend
_TAKE_REQUEST = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window_ms = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window_ms - now_ms
end
redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window_ms)
return 0
"""


def rate_key(key: str) -> str:
    return f"{PREFIX}rpm:{key}"


def spend_key(tenant: str, window: Window) -> str:
    return f"{PREFIX}spend:{tenant}:{window.period}:{window.start}"


class RedisLimits:
    def __init__(self, url: str) -> None:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=TIMEOUT_SECONDS,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),  # a refusal now beats a late answer Envoy has given up on
            decode_responses=True,
        )
        self._redis = aioredis.Redis.from_pool(pool)
        self._take = self._redis.register_script(_TAKE_REQUEST)
        self._unsaved: dict[str, tuple[int, float]] = {}  # spend key -> (expire at, USD)
        self._flushing: asyncio.Task[None] | None = None

    async def take_request(self, key: str, limit: int) -> float:
        window_ms = int(RATE_WINDOW_SECONDS * 1000)
        try:
            wait_ms = await self._take(keys=[rate_key(key)], args=[limit, window_ms, uuid.uuid4().hex])
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        return float(wait_ms) / 1000 if wait_ms else 0.0

    async def spent(self, tenant: str, window: Window) -> float:
        try:
            value = await self._redis.get(spend_key(tenant, window))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        return float(value) if value else 0.0

    def add_spend(self, tenant: str, window: Window, usd: float) -> None:
        self._keep(spend_key(tenant, window), window.end + 3600, usd)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def close(self) -> None:
        if self._flushing is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._flushing), CLOSE_SECONDS)
            self._flushing.cancel()
        if self._unsaved:
            log.warning("spend of $%.8f not recorded in Redis at shutdown", sum(u for _, u in self._unsaved.values()))
        await self._redis.aclose()

    def _keep(self, key: str, expire_at: int, usd: float) -> None:
        self._unsaved[key] = (expire_at, self._unsaved.get(key, (expire_at, 0.0))[1] + usd)

    async def _flush(self) -> None:
        while self._unsaved:
            batch, self._unsaved = self._unsaved, {}
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    for key, (expire_at, usd) in batch.items():
                        pipe.incrbyfloat(key, usd)
                        pipe.expireat(key, expire_at)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                for key, (expire_at, usd) in batch.items():
                    self._keep(key, expire_at, usd)
                log.warning("spend not yet recorded in Redis (%s): retrying in %g s", type(exc).__name__, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
