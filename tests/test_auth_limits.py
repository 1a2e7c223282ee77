"""Key rotation through the keys file, the admission rules, and the rate and budget state: in process, and in a
real Redis shared by several clients with atomic updates."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
import yaml

from extproc.auth.config import hash_key
from extproc.auth.gate import Admission, Denial, Gate, presented_key
from extproc.auth.keyring import RECHECK_SECONDS, KeyRing
from extproc.auth.limits import RATE_WINDOW_SECONDS, MemoryLimits, StoreUnavailable, budget_window
from extproc.auth.redis_limits import RedisLimits, spend_key
from extproc.config.model import ApiKey, AuthConfig
from extproc.local.llama_server import free_port
from extproc.metrics import Metrics
from tests.redis_server import RedisServer, redis_server_fixture  # noqa: F401


def api_key(name: str, secret: str, tenant: str = "acme", **extra: object) -> ApiKey:
    return ApiKey(name=name, key_hash=hash_key(secret), tenant=tenant, **extra)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write_keys(path: Path, *entries: tuple[str, str]) -> None:
    """Replace the file atomically, the way a secret manager rotates it."""
    staged = path.with_suffix(".tmp")
    keys = [{"name": name, "keyHash": hash_key(secret), "tenant": "acme"} for name, secret in entries]
    staged.write_text(yaml.safe_dump({"keys": keys}))
    os.replace(staged, path)


def test_keys_file_rotation_takes_effect_without_a_restart(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.yaml"
    write_keys(keys_file, ("old", "sk-old"))
    clock = Clock()
    ring = KeyRing(AuthConfig(True, (api_key("inline", "sk-inline"),), str(keys_file)), clock)
    assert ring.lookup("sk-old") is not None and ring.lookup("sk-inline") is not None
    write_keys(keys_file, ("new", "sk-new"))
    assert ring.lookup("sk-new") is None, "looked at once per RECHECK_SECONDS"
    clock.now += RECHECK_SECONDS
    assert ring.lookup("sk-new") is not None and ring.lookup("sk-old") is None
    assert ring.lookup("sk-inline") is not None, "inline keys stay"


def test_a_broken_keys_file_keeps_the_keys_in_force(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    keys_file = tmp_path / "keys.yaml"
    write_keys(keys_file, ("a", "sk-a"))
    clock = Clock()
    ring = KeyRing(AuthConfig(True, keys_file=str(keys_file)), clock)
    assert ring.lookup("sk-a") is not None
    keys_file.write_text("keys: [{name: b, keyHash: not-a-hash, tenant: acme}]")
    clock.now += RECHECK_SECONDS
    assert ring.lookup("sk-a") is not None
    assert "keys file not reloaded" in caplog.text and "keyHash" in caplog.text


def test_the_key_comes_from_a_bearer_token_or_x_api_key() -> None:
    assert presented_key({"authorization": "Bearer sk-1"}) == "sk-1"
    assert presented_key({"authorization": "bearer  sk-1 "}) == "sk-1"
    assert presented_key({"x-api-key": "sk-2"}) == "sk-2"
    assert presented_key({"authorization": "Basic dXNlcg==", "x-api-key": "sk-3"}) == "sk-3"
    assert presented_key({"authorization": "Bearer "}) is None
    assert presented_key({}) is None


async def test_a_key_limited_to_some_strategies_gets_one_pinned_when_it_names_none() -> None:
    restricted = api_key("r", "sk-r", allowed_strategies=("cost", "latency"))
    open_key = api_key("o", "sk-o", tenant="other")
    gate = Gate(AuthConfig(True, (restricted, open_key)), "hybrid", Metrics())
    assert await gate.admit({"x-api-key": "sk-r"}) == Admission(restricted, "cost"), "its first"
    pinned = Gate(AuthConfig(True, (restricted,)), "latency", Metrics())
    assert await pinned.admit({"x-api-key": "sk-r"}) == Admission(restricted, "latency"), "the router's default"
    assert await gate.admit({"x-api-key": "sk-r", "x-llm-router-strategy": "latency"}) == Admission(restricted)
    assert await gate.admit({"x-api-key": "sk-o"}) == Admission(open_key)
    denied = await gate.admit({"x-api-key": "sk-r", "x-llm-router-strategy": "hybrid"})
    assert isinstance(denied, Denial) and (denied.status, denied.code) == (403, "strategy_not_allowed")


async def test_a_config_reload_keeps_the_rate_and_budget_state() -> None:
    auth = AuthConfig(True, (api_key("k", "sk-k", requests_per_minute=1),))
    before = Gate(auth, "hybrid", Metrics())
    assert isinstance(await before.admit({"x-api-key": "sk-k"}), Admission)
    after = Gate(auth, "hybrid", Metrics(), previous=before)
    denied = await after.admit({"x-api-key": "sk-k"})
    assert isinstance(denied, Denial) and denied.status == 429


async def test_memory_rate_window_slides() -> None:
    clock = Clock()
    limits = MemoryLimits(clock)
    assert [await limits.take_request("k", 2) for _ in range(2)] == [0.0, 0.0]
    clock.now += 10
    assert await limits.take_request("k", 2) == pytest.approx(RATE_WINDOW_SECONDS - 10)
    clock.now += RATE_WINDOW_SECONDS - 10
    assert await limits.take_request("k", 2) == 0.0, "the oldest request left the window"
    assert await limits.take_request("other", 2) == 0.0, "per key"


async def test_memory_spend_resets_with_the_period() -> None:
    limits = MemoryLimits()
    hour = budget_window("1h", 7200.5)
    assert (hour.start, hour.end) == (7200, 10800)
    limits.add_spend("acme", hour, 0.25)
    limits.add_spend("acme", hour, 0.5)
    assert await limits.spent("acme", hour) == 0.75
    assert await limits.spent("acme", budget_window("1h", 10800.0)) == 0.0
    assert await limits.spent("other", hour) == 0.0


async def test_redis_rate_limit_is_atomic_across_clients(redis_server: RedisServer) -> None:
    stores = [RedisLimits(redis_server.url) for _ in range(3)]
    try:
        waits = await asyncio.gather(*(stores[i % 3].take_request("atomic", 10) for i in range(30)))
        assert sum(1 for w in waits if w == 0.0) == 10
        assert all(0 < w <= RATE_WINDOW_SECONDS for w in waits if w)
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_redis_spend_is_summed_across_clients_and_expires_after_its_period(redis_server: RedisServer) -> None:
    window = budget_window("1d", time.time())
    first, second = RedisLimits(redis_server.url), RedisLimits(redis_server.url)
    try:
        for _ in range(50):
            first.add_spend("shared", window, 0.01)
            second.add_spend("shared", window, 0.02)
        await asyncio.gather(first.close(), second.close())  # waits for the writes in flight
        reader = RedisLimits(redis_server.url)
        assert await reader.spent("shared", window) == pytest.approx(1.5)
        await reader.close()
        with redis_server.client() as client:
            assert client.expiretime(spend_key("shared", window)) == window.end + 3600
    finally:
        await asyncio.gather(first.close(), second.close())


async def test_an_unreachable_redis_is_reported_not_ignored() -> None:
    store = RedisLimits(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(StoreUnavailable):
            await store.take_request("k", 1)
        with pytest.raises(StoreUnavailable):
            await store.spent("t", budget_window("1h", 0))
    finally:
        await store.close()
