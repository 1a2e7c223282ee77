"""The `auth` section: client keys stored hashed, the keys file, validation with key paths, `hash-key`, and
the Envoy filters it renders (checked by Envoy itself)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc.auth.config import hash_key
from extproc.config.loader import ConfigError, parse_config
from extproc.config.model import Config
from extproc.envoy_config.bootstrap import render_bootstrap, render_bootstrap_yaml
from extproc.local.envoy_process import envoy_binary

KEY = "sk-client-unit-1"


def document(auth: dict[str, Any]) -> dict[str, Any]:
    return {
        "externalProviders": [{"name": "openai", "type": "openai", "apiKey": "k", "defaultModel": "gpt-4o-mini"}],
        "auth": auth,
    }


def key_entry(name: str = "app", tenant: str = "acme", secret: str = KEY, **extra: Any) -> dict[str, Any]:
    return {"name": name, "keyHash": hash_key(secret), "tenant": tenant, **extra}


def problems_of(auth: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(document(auth), {})
    return caught.value.problems


def test_auth_is_off_by_default_and_in_the_embedded_default() -> None:
    from extproc.config.default import default_config

    assert not parse_config(document({}), {}).auth.enabled
    assert not default_config().auth.enabled


def test_a_full_key_entry_loads() -> None:
    entry = key_entry(
        allowedModels=["gpt-4o-mini"],
        allowedStrategies=["cost", "latency"],
        requestsPerMinute=60,
        budgetUsd=12.5,
        budgetPeriod="1d",
    )
    auth = parse_config(document({"enabled": True, "keys": [entry], "redisUrl": "${URL}"}), {"URL": "redis://r:6379"})
    key = auth.auth.keys[0]
    assert key.key_hash == "sha256:" + hashlib.sha256(KEY.encode()).hexdigest()
    assert (key.name, key.tenant, key.allowed_models, key.allowed_strategies) == (
        "app",
        "acme",
        frozenset({"gpt-4o-mini"}),
        ("cost", "latency"),
    )
    assert (key.requests_per_minute, key.budget_usd, key.budget_period) == (60, 12.5, "1d")
    assert auth.auth.redis_url == "redis://r:6379" and "redis://" not in repr(auth.auth)


def test_every_problem_is_reported_with_its_key_path() -> None:
    problems = problems_of(
        {
            "enabled": "maybe",
            "keys": [
                {"name": "a b", "keyHash": "sk-plaintext-by-mistake", "tenant": "anonymous"},
                key_entry(allowedStrategies=["fastest"], budgetPeriod="1w", requestsPerMinute=0, allowedModels=[]),
                {"keyHash": hash_key("x"), "key": "sk-raw"},
            ],
            "redisUrl": "http://cache:6379",
            "extra": 1,
        }
    )
    expected = [
        "auth.enabled: must be true or false",
        "auth.keys[0].name: must use only letters, digits, '-', '_' and '.'",
        'auth.keys[0].keyHash: must be "sha256:" and 64 hex digits (make it with `llm-router hash-key`)',
        "auth.keys[0].tenant: 'anonymous' is reserved for requests when auth is off",
        "auth.keys[1].allowedModels: must list at least one entry (leave it out to allow any)",
        "auth.keys[1].allowedStrategies: 'fastest' is not one of hybrid, cost, latency, cluster_first, "
        "external_first, capability",
        "auth.keys[1].requestsPerMinute: must be at least 1",
        "auth.keys[1].budgetPeriod: must be one of 1h, 1d, 30d (got '1w')",
        "auth.keys[2].name: is required",
        "auth.keys[2].tenant: is required",
        "auth.keys[2].key: unknown key",
        "auth.redisUrl: must be a redis://, rediss:// or unix:// URL",
        "auth.extra: unknown key",
    ]
    for problem in expected:
        assert problem in problems, problems
    assert not any("sk-plaintext-by-mistake" in p or "sk-raw" in p for p in problems), "values are not echoed"


def test_keys_must_be_unique_and_a_tenants_keys_share_one_budget() -> None:
    problems = problems_of(
        {
            "enabled": True,
            "keys": [
                key_entry("a", budgetUsd=5, budgetPeriod="1d"),
                key_entry("a", secret="other", budgetUsd=5, budgetPeriod="1d"),
                key_entry("c", budgetUsd=9, budgetPeriod="1d"),
            ],
        }
    )
    assert "auth.keys[1].name: duplicate key name 'a' (also auth.keys[0])" in problems
    assert "auth.keys[2].keyHash: the same key as auth.keys[0]" in problems
    assert (
        "auth.keys[2].budgetUsd: keys of tenant 'acme' share its budget: budgetUsd and budgetPeriod must match "
        "auth.keys[0]" in problems
    )


def test_enabled_without_any_key_is_refused() -> None:
    assert problems_of({"enabled": True}) == [
        "auth.keys: no client key configured: with auth enabled every request would be refused"
    ]


def test_keys_file_has_the_sections_shape_and_its_problems_name_the_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(yaml.safe_dump({"keys": [key_entry("from-file", secret="f1")]}))
    config = parse_config(document({"enabled": True, "keysFile": str(keys_file)}), {})
    assert [k.name for k in config.auth.file_keys] == ["from-file"] and config.auth.keys == ()
    keys_file.write_text(yaml.safe_dump({"keys": [{"name": "x", "keyHash": "md5:abc", "tenant": "t"}]}))
    problems = problems_of({"enabled": True, "keysFile": str(keys_file)})
    assert problems[0].startswith(f"auth.keysFile({keys_file}).keys[0].keyHash: must be")
    missing = tmp_path / "missing.yaml"
    assert problems_of({"enabled": True, "keysFile": str(missing)})[0] == (
        f"auth.keysFile: cannot read {missing} (No such file or directory)"
    )


def test_inline_and_file_keys_are_checked_together(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(yaml.safe_dump({"keys": [key_entry("dup", secret="s2")]}))
    problems = problems_of({"enabled": True, "keys": [key_entry("dup")], "keysFile": str(keys_file)})
    assert f"auth.keysFile({keys_file}).keys[0].name: duplicate key name 'dup' (also auth.keys[0])" in problems


def test_hash_key_prints_the_stored_form_of_a_key_from_stdin() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "extproc.cli", "hash-key"], input=f"{KEY}\n", capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sha256:" + hashlib.sha256(KEY.encode()).hexdigest()
    empty = subprocess.run([sys.executable, "-m", "extproc.cli", "hash-key"], input="", capture_output=True)
    assert empty.returncode == 2


def _listener_parts(config: Config) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    manager = render_bootstrap(config)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    typed = manager["typed_config"]
    return typed["http_filters"], typed["route_config"]["virtual_hosts"][0]["routes"]


def test_no_ext_authz_filter_when_auth_is_off() -> None:
    filters, routes = _listener_parts(parse_config(document({}), {}))
    assert "envoy.filters.http.ext_authz" not in [f["name"] for f in filters]
    assert not any("envoy.filters.http.ext_authz" in r.get("typed_per_filter_config", {}) for r in routes)


def test_ext_authz_runs_first_fails_closed_and_skips_the_admin_routes() -> None:
    config = parse_config(document({"enabled": True, "keys": [key_entry()]}), {})
    filters, routes = _listener_parts(config)
    assert [f["name"] for f in filters][:2] == ["envoy.filters.http.ext_authz", "envoy.filters.http.ext_proc"]
    authz = filters[0]["typed_config"]
    assert authz["failure_mode_allow"] is False
    assert authz["grpc_service"]["envoy_grpc"]["cluster_name"] == "llm_router_controller_grpc"
    assert [p["exact"] for p in authz["allowed_headers"]["patterns"]] == [
        "authorization",
        "x-api-key",
        "x-llm-router-strategy",
    ]
    by_match = {r["match"].get("path") or r["match"].get("prefix"): r for r in routes}
    for path in ("/health", "/metrics", "/v1/models", "/"):
        assert by_match[path]["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["disabled"] is True
    assert "typed_per_filter_config" not in by_match["/v1/chat/completions"], "the chat route is always checked"
    ext_procs = [f["typed_config"]["metadata_options"] for f in filters if f["name"] == "envoy.filters.http.ext_proc"]
    assert "envoy.filters.http.ext_authz" in ext_procs[0]["forwarding_namespaces"]["untyped"]


def test_envoy_accepts_the_rendered_auth_config(tmp_path: Path) -> None:
    config = parse_config(document({"enabled": True, "keys": [key_entry()]}), {})
    rendered = tmp_path / "envoy.yaml"
    rendered.write_text(render_bootstrap_yaml(config))
    result = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(rendered)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert hash_key(KEY).removeprefix("sha256:") not in rendered.read_text(), "no key material in Envoy's config"
