"""Client authentication through real Envoy (ext_authz served by the controller) with in-process rate and budget
state: keys, tenants carried as dynamic metadata, allowed strategies and models, per-key requests per minute,
per-tenant dollar budgets from real usage, key rotation through the keys file, and no secret leaking anywhere.

One stack: a llama.cpp cluster (HMAC-signed, with a shared secret) plus OpenAI and Anthropic stand-ins.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from extproc.auth.config import hash_key
from tests.stack_runner import RunningStack, local_cluster, run_envoy, run_stack, stack_document, wait_for
from tests.standins.anthropic_standin import AnthropicStandIn
from tests.standins.base import StandIn, serve_in_thread
from tests.standins.openai_standin import OpenAIStandIn

# Distinctive secrets, so a leak is easy to spot.
OPENAI_KEY = "sk-openai-leakcheck-7d1e44"
ANTHROPIC_KEY = "sk-ant-leakcheck-52b9c0"
CLUSTER_SECRET = "cluster-secret-leakcheck-e03a91"
CLIENT_KEYS = {
    "main": "sk-client-main-9f27c1aa",
    "rpm": "sk-client-rpm-1c8e02bb",
    "budget": "sk-client-budget-6a0d73cc",
    "restricted": "sk-client-restricted-d41e58dd",
    "rotating-old": "sk-client-rotating-old-88f2b1",
    "rotating-new": "sk-client-rotating-new-3b7c90",
}
WRONG_KEY = "sk-client-wrong-b6a8e4ee"
CLAUDE_MODEL = "claude-3-5-haiku-20241022"
BUDGET_USD = 0.000001  # less than one request to gpt-4o-mini costs
HI = {"model": "auto", "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 5}


@dataclass(frozen=True, slots=True)
class AuthStack:
    stack: RunningStack
    workdir: Path
    keys_file: Path
    openai: OpenAIStandIn
    claude: AnthropicStandIn


def key_entry(name: str, tenant: str, **limits: object) -> dict[str, object]:
    return {"name": name, "keyHash": hash_key(CLIENT_KEYS[name]), "tenant": tenant, **limits}


def write_keys_file(path: Path, name: str) -> None:
    """Replace the keys file atomically, as a secret manager rotating it would."""
    staged = path.with_suffix(".tmp")
    staged.write_text(yaml.safe_dump({"keys": [key_entry(name, "acme")]}))
    os.replace(staged, path)


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    openai, claude = OpenAIStandIn(api_key=OPENAI_KEY), AnthropicStandIn(api_key=ANTHROPIC_KEY)
    with serve_in_thread(openai), serve_in_thread(claude):
        workdir = tmp_path_factory.mktemp("auth-stack")
        keys_file = workdir / "keys.yaml"
        write_keys_file(keys_file, "rotating-old")
        document = stack_document(
            clusters=[local_cluster("local-aws", 0.0928, authType="hmac", sharedSecret="${CLUSTER_SECRET}")],
            providers=[
                {
                    "name": "openai",
                    "type": "openai",
                    "apiKey": "${OPENAI_KEY}",
                    "defaultModel": "gpt-4o-mini",
                    "baseUrl": openai.base_url,
                },
                {
                    "name": "claude",
                    "type": "claude",
                    "apiKey": "${ANTHROPIC_KEY}",
                    "defaultModel": CLAUDE_MODEL,
                    "baseUrl": claude.origin,
                },
            ],
        )
        document["auth"] = {
            "enabled": True,
            "keysFile": str(keys_file),
            "keys": [
                key_entry("main", "acme"),
                key_entry("rpm", "throttled", requestsPerMinute=2),
                key_entry("budget", "frugal", budgetUsd=BUDGET_USD, budgetPeriod="1h"),
                key_entry(
                    "restricted",
                    "contractor",
                    allowedStrategies=["cost", "external_first"],
                    allowedModels=[CLAUDE_MODEL],
                ),
            ],
        }
        env = {
            "OPENAI_KEY": OPENAI_KEY,
            "ANTHROPIC_KEY": ANTHROPIC_KEY,
            "CLUSTER_SECRET": CLUSTER_SECRET,
            "LLM_ROUTER_ENVOY_LOG_LEVEL": "info",
        }
        with run_stack(document, workdir, env=env) as stack:
            yield AuthStack(stack, workdir, keys_file, openai, claude)


def chat(auth: AuthStack, key: str | None = None, body: dict | None = None, **headers: str) -> httpx.Response:
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return httpx.post(f"{auth.stack.url}/v1/chat/completions", json=body or HI, headers=headers, timeout=60)


def assert_openai_error(response: httpx.Response, status: int, type_: str, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == (type_, code)
    assert error["message"]
    return error


def test_no_key_is_a_401_in_openais_shape(auth: AuthStack) -> None:
    response = chat(auth)
    assert_openai_error(response, 401, "authentication_error", "missing_api_key")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_a_wrong_key_is_a_401_that_does_not_echo_it(auth: AuthStack, header: str) -> None:
    value = f"Bearer {WRONG_KEY}" if header == "authorization" else WRONG_KEY
    response = chat(auth, **{header: value})
    assert_openai_error(response, 401, "authentication_error", "invalid_api_key")
    assert WRONG_KEY not in response.text


def test_a_valid_key_is_served_by_the_cluster(auth: AuthStack) -> None:
    response = chat(auth, CLIENT_KEYS["main"])
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-router-target"] == "local-aws"
    assert response.json()["usage"]["completion_tokens"] > 0


def test_x_api_key_works_too_and_the_clients_key_never_reaches_the_target(auth: AuthStack) -> None:
    before = len(auth.openai.requests)
    response = chat(auth, **{"x-api-key": CLIENT_KEYS["main"], "x-llm-router-strategy": "external_first"})
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-router-target"] == "openai"
    (received,) = auth.openai.requests[before:]
    assert received.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert "x-api-key" not in received.headers
    assert CLIENT_KEYS["main"] not in str(received.headers) + str(received.body)


def test_admin_routes_and_the_404_need_no_key(auth: AuthStack) -> None:
    for path in ("/health", "/metrics", "/v1/models", "/v1/models/auto"):
        assert httpx.get(f"{auth.stack.url}{path}", timeout=10).status_code == 200, path
    unknown = httpx.post(f"{auth.stack.url}/v1/embeddings", json={"input": "x"}, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_url"


def test_requests_over_the_keys_rate_get_a_429_with_retry_after(auth: AuthStack) -> None:
    assert [chat(auth, CLIENT_KEYS["rpm"]).status_code for _ in range(2)] == [200, 200]
    limited = chat(auth, CLIENT_KEYS["rpm"])
    error = assert_openai_error(limited, 429, "rate_limit_error", "rate_limit_exceeded")
    assert "2 requests per minute" in error["message"]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert chat(auth, CLIENT_KEYS["main"]).status_code == 200, "other keys are not limited"


def test_a_tenant_over_its_budget_gets_a_429_after_real_spend(auth: AuthStack) -> None:
    first = chat(auth, CLIENT_KEYS["budget"], **{"x-llm-router-strategy": "external_first"})
    assert first.status_code == 200, first.text
    assert first.json()["usage"]["total_tokens"] > 0, "the stand-in reports usage: the spend is real"
    # Its usage comes with Envoy's access log (batched, within ~0.1 s): the budget counts it from then on.
    spend = 'llm_router_spend_usd_total{model="gpt-4o-mini",target="openai",tenant="frugal"}'
    wait_for(lambda: spend in httpx.get(f"{auth.stack.url}/metrics", timeout=10).text, "the tenant's spend recorded")
    refused = chat(auth, CLIENT_KEYS["budget"], **{"x-llm-router-strategy": "external_first"})
    error = assert_openai_error(refused, 429, "insufficient_quota", "budget_exhausted")
    assert "budget of $0.000001 for the period (1h) exhausted" in error["message"]
    assert "resets at" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    metrics = httpx.get(f"{auth.stack.url}/metrics", timeout=10).text
    assert 'llm_router_auth_denials_total{reason="budget_exhausted",tenant="frugal"} 1.0' in metrics


def test_a_disallowed_strategy_is_a_403(auth: AuthStack) -> None:
    response = chat(auth, CLIENT_KEYS["restricted"], **{"x-llm-router-strategy": "hybrid"})
    error = assert_openai_error(response, 403, "permission_error", "strategy_not_allowed")
    assert "cost, external_first" in error["message"]


def test_a_disallowed_model_is_a_403(auth: AuthStack) -> None:
    response = chat(auth, CLIENT_KEYS["restricted"], {**HI, "model": "gpt-4o-mini"})
    error = assert_openai_error(response, 403, "permission_error", "model_not_allowed")
    assert CLAUDE_MODEL in error["message"]


def test_a_restricted_key_is_routed_within_its_models_with_its_default_strategy(auth: AuthStack) -> None:
    response = chat(auth, CLIENT_KEYS["restricted"])  # no strategy header: the router's hybrid is not allowed
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-router-target"] == "claude", "the only target serving an allowed model"
    assert response.headers["x-llm-router-reason"] == "cheapest", "the key's first strategy, cost, was used"
    named = chat(auth, CLIENT_KEYS["restricted"], {**HI, "model": CLAUDE_MODEL}, **{"x-llm-router-strategy": "cost"})
    assert named.status_code == 200 and named.headers["x-llm-router-target"] == "claude"
    metrics = httpx.get(f"{auth.stack.url}/metrics", timeout=10).text
    assert f'llm_router_spend_usd_total{{model="{CLAUDE_MODEL}",target="claude",tenant="contractor"}}' in metrics


def test_rotating_the_keys_file_swaps_keys_without_a_restart(auth: AuthStack) -> None:
    assert chat(auth, CLIENT_KEYS["rotating-old"]).status_code == 200
    write_keys_file(auth.keys_file, "rotating-new")
    wait_for(lambda: chat(auth, CLIENT_KEYS["rotating-new"]).status_code == 200, "the new key accepted", 15)
    assert chat(auth, CLIENT_KEYS["rotating-old"]).status_code == 401


def test_no_secret_leaks_into_logs_metrics_health_errors_or_other_targets(auth: AuthStack) -> None:
    main = CLIENT_KEYS["main"]
    bodies = [chat(auth, main).text, chat(auth, main, **{"x-llm-router-strategy": "external_first"}).text]
    auth.openai.fail_next(500)  # the attempt moves on to claude, which must not see OpenAI's key
    before = len(auth.claude.requests)
    moved = chat(auth, main, **{"x-llm-router-strategy": "external_first"})
    assert moved.status_code == 200 and moved.headers["x-llm-router-target"] == "claude", moved.text
    assert len(auth.claude.requests) == before + 1
    bodies += [moved.text, chat(auth, WRONG_KEY).text, chat(auth).text]
    bodies += [httpx.get(f"{auth.stack.url}{path}", timeout=10).text for path in ("/metrics", "/health", "/v1/models")]
    client_secrets = [*CLIENT_KEYS.values(), WRONG_KEY]
    hashes = [hash_key(k).removeprefix("sha256:") for k in CLIENT_KEYS.values()]
    everything = [OPENAI_KEY, ANTHROPIC_KEY, CLUSTER_SECRET, *client_secrets, *hashes]

    exposed = "\n".join(bodies)
    assert not [s for s in everything if s in exposed], "a secret is in a response body, /metrics or /health"
    logs = _logs_and_rendered_files(auth.workdir)
    names = {Path(name).name for name in logs}
    assert {"envoy.log", "up.log", "envoy.yaml", "llama-local-aws.log"} <= names, names
    assert "request refused: invalid_key" in logs["up.log"], "the controller's log is the one read"
    for name, text in logs.items():
        assert not [s for s in everything if s in text], f"a secret is in {name}"
    _assert_targets_saw_only_their_own(auth.openai, OPENAI_KEY, everything)
    _assert_targets_saw_only_their_own(auth.claude, ANTHROPIC_KEY, everything)


def _logs_and_rendered_files(workdir: Path) -> dict[str, str]:
    """Every file the stack wrote (controller, Envoy and llama.cpp logs, the rendered bootstrap); not the
    router config and keys file, which hold the key hashes by design."""
    files = [p for p in workdir.rglob("*") if p.is_file() and p.name not in ("router.yaml", "keys.yaml")]
    return {str(p.relative_to(workdir)): p.read_bytes().decode("latin-1") for p in files}


def _assert_targets_saw_only_their_own(standin: StandIn, own_key: str, secrets: list[str]) -> None:
    assert standin.requests, "the target was used"
    for request in standin.requests:
        seen = str(request.headers) + str(request.body)
        assert [s for s in secrets if s in seen and s != own_key] == [], f"{type(standin).__name__} saw a secret"


async def test_without_the_controller_auth_fails_closed(tmp_path: Path) -> None:
    """Envoy alone: the key check cannot be made, so nothing goes through (an OpenAI-shaped 503)."""
    document = stack_document([], [{"name": "openai", "type": "openai", "apiKey": "k", "defaultModel": "gpt-4o-mini"}])
    document["auth"] = {"enabled": True, "keys": [key_entry("main", "acme")]}
    with run_envoy(document, tmp_path) as url:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                f"{url}/v1/chat/completions", json=HI, headers={"authorization": f"Bearer {CLIENT_KEYS['main']}"}
            )
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "router_unavailable"


def test_spend_is_labelled_anonymous_when_auth_is_off(stack: RunningStack) -> None:
    """The shared stack of conftest runs without auth: every request is the anonymous tenant's."""
    response = httpx.post(f"{stack.url}/v1/chat/completions", json=HI, timeout=60)
    assert response.status_code == 200, response.text
    target = response.headers["x-llm-router-target"]
    spend = f'llm_router_spend_usd_total{{model="tiny-llama",target="{target}",tenant="anonymous"}}'
    # The request's usage comes with Envoy's access log, batched: a few milliseconds after the response.
    wait_for(lambda: spend in httpx.get(f"{stack.url}/metrics", timeout=10).text, "the anonymous spend in /metrics")
