"""The `auth` section: client keys (stored as sha256 only), the keys file, the shared state store."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import yaml

from extproc.config.model import BUDGET_PERIODS, STRATEGIES, ApiKey, AuthConfig, Secret
from extproc.config.reader import Problems, Reader

ANONYMOUS = "anonymous"  # the tenant of every request when auth is off
_HASH = re.compile(r"^sha256:[0-9a-fA-F]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

KeyEntry = tuple[str, ApiKey]  # (key path, key)


def hash_key(key: str) -> str:
    """The stored form of a client key."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def parse_auth(r: Reader) -> AuthConfig:
    enabled = r.boolean("enabled", False)
    inline = parse_keys(r, "keys")
    keys_file = r.string("keysFile")
    from_file = read_keys_file(keys_file, r.problems, r.at("keysFile")) if keys_file else []
    redis_url = r.string("redisUrl")
    if redis_url and not redis_url.startswith(_REDIS_SCHEMES):
        r.problems.add(r.at("redisUrl"), "must be a redis://, rediss:// or unix:// URL")
    r.finish()
    check_keys(inline + from_file, r.problems)
    if enabled and not inline + from_file:
        r.problems.add(r.at("keys"), "no client key configured: with auth enabled every request would be refused")
    return AuthConfig(
        enabled=enabled,
        keys=tuple(k for _, k in inline),
        keys_file=keys_file,
        file_keys=tuple(k for _, k in from_file),
        redis_url=Secret(redis_url) if redis_url else None,
    )


def read_keys_file(path: str, problems: Problems, at: str) -> list[KeyEntry]:
    """The keys of a YAML file shaped like the section (`keys: [...]`); problems are reported under `at`."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        problems.add(at, f"cannot read {path} ({exc.strerror})")
        return []
    except yaml.YAMLError as exc:
        problems.add(at, f"{path} is not valid YAML ({exc})")
        return []
    r = Reader(document, f"{at}({path})", problems)
    keys = parse_keys(r, "keys")
    r.finish()
    return keys


def parse_keys(r: Reader, field: str) -> list[KeyEntry]:
    entries = [(at, _key(Reader(node, at, r.problems))) for at, node in r.items(field)]
    return [(at, key) for at, key in entries if key is not None]


def check_keys(entries: list[KeyEntry], problems: Problems) -> None:
    """Names and hashes are unique; the keys of one tenant agree on its budget, which they share."""
    names: dict[str, str] = {}
    hashes: dict[str, str] = {}
    budgets: dict[str, tuple[str, tuple[float | None, str]]] = {}
    for at, key in entries:
        if key.name in names:
            problems.add(f"{at}.name", f"duplicate key name {key.name!r} (also {names[key.name]})")
        if key.key_hash in hashes:
            problems.add(f"{at}.keyHash", f"the same key as {hashes[key.key_hash]}")
        names.setdefault(key.name, at)
        hashes.setdefault(key.key_hash, at)
        budget = (key.budget_usd, key.budget_period)
        first = budgets.setdefault(key.tenant, (at, budget))
        if first[1] != budget:
            problems.add(
                f"{at}.budgetUsd",
                f"keys of tenant {key.tenant!r} share its budget: budgetUsd and budgetPeriod must match {first[0]}",
            )


def _key(r: Reader) -> ApiKey | None:
    name = r.string("name", required=True)
    key_hash = r.string("keyHash", required=True)
    if key_hash and not _HASH.match(key_hash):
        r.problems.add(r.at("keyHash"), 'must be "sha256:" and 64 hex digits (make it with `llm-router hash-key`)')
        key_hash = None
    tenant = r.string("tenant", required=True)
    for field, value in (("name", name), ("tenant", tenant)):
        if value and not _NAME.match(value):
            r.problems.add(r.at(field), "must use only letters, digits, '-', '_' and '.'")
    if tenant == ANONYMOUS:
        r.problems.add(r.at("tenant"), f"{ANONYMOUS!r} is reserved for requests when auth is off")
    models = _allowed(r, "allowedModels")
    strategies = _allowed(r, "allowedStrategies")
    for strategy in strategies or ():
        if strategy not in STRATEGIES:
            r.problems.add(r.at("allowedStrategies"), f"{strategy!r} is not one of {', '.join(STRATEGIES)}")
    key = ApiKey(
        name=name or "",
        key_hash=(key_hash or "").lower(),
        tenant=tenant or "",
        allowed_models=frozenset(models) if models is not None else None,
        allowed_strategies=strategies,
        requests_per_minute=r.integer("requestsPerMinute", 0, minimum=1) if r.has("requestsPerMinute") else None,
        budget_usd=r.number("budgetUsd", None, positive=True),
        budget_period=r.choice("budgetPeriod", BUDGET_PERIODS, "30d"),
    )
    r.finish()
    return key if name and key_hash and tenant else None


def _allowed(r: Reader, field: str) -> tuple[str, ...] | None:
    """A list that restricts (None when absent: anything goes)."""
    if not r.has(field):
        r.raw(field)
        return None
    values = r.strings(field)
    if not values:
        r.problems.add(r.at(field), "must list at least one entry (leave it out to allow any)")
    return values
