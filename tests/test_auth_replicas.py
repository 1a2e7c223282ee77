"""Two controller replicas (two real stacks: Envoy + controller each) sharing one real Redis enforce one rate
limit per key and one budget per tenant; an unreachable Redis fails closed; Redis's password never leaks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from extproc.auth.config import hash_key
from extproc.local.llama_server import free_port
from tests.conftest import PROVIDER_KEY
from tests.redis_server import REDIS_PASSWORD, RedisServer, redis_server_fixture  # noqa: F401
from tests.stack_runner import RunningStack, run_stack, stack_document, wait_for
from tests.standins.openai_standin import OpenAIStandIn

KEYS = {"budget": "sk-shared-budget-41f0", "rpm": "sk-shared-rpm-93c2", "free": "sk-shared-free-07ad"}
HI = {"model": "auto", "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 5}


def auth_document(openai_standin: OpenAIStandIn) -> dict:
    document = stack_document(
        clusters=[],
        providers=[
            {
                "name": "openai",
                "type": "openai",
                "apiKey": "${OPENAI_KEY}",
                "defaultModel": "gpt-4o-mini",
                "baseUrl": openai_standin.base_url,
            },
        ],
    )
    document["auth"] = {
        "enabled": True,
        "redisUrl": "${REDIS_URL}",
        "keys": [
            {"name": "budget", "keyHash": hash_key(KEYS["budget"]), "tenant": "team", "budgetUsd": 0.000001},
            {"name": "rpm", "keyHash": hash_key(KEYS["rpm"]), "tenant": "burst", "requestsPerMinute": 3},
            {"name": "free", "keyHash": hash_key(KEYS["free"]), "tenant": "open"},
        ],
    }
    return document


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, openai_standin: OpenAIStandIn, redis_server: RedisServer
) -> Iterator[tuple[RunningStack, RunningStack]]:
    env = {"OPENAI_KEY": PROVIDER_KEY, "REDIS_URL": redis_server.url}
    with (
        run_stack(auth_document(openai_standin), tmp_path_factory.mktemp("replica-a"), env=env) as first,
        run_stack(auth_document(openai_standin), tmp_path_factory.mktemp("replica-b"), env=env) as second,
    ):
        yield first, second


def chat(stack: RunningStack, key: str) -> httpx.Response:
    return httpx.post(
        f"{stack.url}/v1/chat/completions", json=HI, headers={"authorization": f"Bearer {key}"}, timeout=60
    )


def wait_for_spend(redis_server: RedisServer, tenant: str) -> None:
    """Spend is written to Redis just after the response: probe for it rather than sleep."""
    with redis_server.client() as client:
        wait_for(
            lambda: any(float(client.get(k) or 0) > 0 for k in client.scan_iter(f"llm-router:spend:{tenant}:*")),
            f"spend recorded for {tenant}",
            10,
        )


def test_one_budget_across_replicas(replicas: tuple[RunningStack, RunningStack], redis_server: RedisServer) -> None:
    first, second = replicas
    assert chat(first, KEYS["budget"]).status_code == 200
    wait_for_spend(redis_server, "team")
    for stack in (second, first):
        refused = chat(stack, KEYS["budget"])
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "budget_exhausted"
        assert "budget of $0.000001 for the period (30d) exhausted" in refused.json()["error"]["message"]


def test_one_rate_limit_across_replicas(replicas: tuple[RunningStack, RunningStack]) -> None:
    first, second = replicas
    assert [chat(stack, KEYS["rpm"]).status_code for stack in (first, second, first)] == [200, 200, 200]
    for stack in (second, first):
        limited = chat(stack, KEYS["rpm"])
        assert limited.status_code == 429, limited.text
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert chat(second, KEYS["free"]).status_code == 200


def test_redis_password_never_leaks(
    replicas: tuple[RunningStack, RunningStack], tmp_path_factory: pytest.TempPathFactory
) -> None:
    for stack in replicas:
        for path in ("/metrics", "/health"):
            assert REDIS_PASSWORD not in httpx.get(f"{stack.url}{path}", timeout=10).text
    root = Path(tmp_path_factory.getbasetemp())
    logs = [p for p in root.glob("replica-*/**/*") if p.is_file() and p.name != "router.yaml"]
    assert any(p.name == "envoy.log" for p in logs) and any(p.name == "up.log" for p in logs)
    assert not [p for p in logs if REDIS_PASSWORD in p.read_text(errors="replace")]


def test_an_unreachable_redis_fails_closed(
    tmp_path_factory: pytest.TempPathFactory, openai_standin: OpenAIStandIn
) -> None:
    env = {"OPENAI_KEY": PROVIDER_KEY, "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"}
    with run_stack(auth_document(openai_standin), tmp_path_factory.mktemp("no-redis"), env=env) as stack:
        refused = chat(stack, KEYS["rpm"])
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "service_unavailable"
        assert chat(stack, KEYS["free"]).status_code == 200, "a key without limits needs no shared state"
        assert REDIS_PASSWORD not in stack.log() + refused.text
