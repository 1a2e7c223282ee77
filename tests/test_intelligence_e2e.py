"""Routing intelligence through real Envoy: tiers, context windows, aliases, A/B split, response cache."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.cluster_helpers import TINY, external_cluster, llama_servers
from tests.stack_runner import RunningStack, run_stack, stack_document
from tests.standins.base import serve_in_thread
from tests.standins.openai_standin import OpenAIStandIn
from tests.test_routing import COMPLEX_PROMPT

KEYS = {"team-a": "sk-team-a-key-123", "team-b": "sk-team-b-key-456"}


class Setup:
    def __init__(self, stack: RunningStack, premium: OpenAIStandIn) -> None:
        self.stack, self.premium = stack, premium

    def chat(self, content: str, tenant: str = "team-a", **extra: object) -> httpx.Response:
        headers = {"authorization": f"Bearer {KEYS[tenant]}", **extra.pop("headers", {})}  # type: ignore[dict-item]
        body = {"model": "auto", "messages": [{"role": "user", "content": content}], "max_tokens": 8, **extra}
        response = httpx.post(f"{self.stack.url}/v1/chat/completions", json=body, headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        return response


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("intelligence")
    premium = OpenAIStandIn(api_key="k-premium")
    with serve_in_thread(premium), llama_servers(TINY, tmp, count=2, parallel=1) as (small, big):
        clusters = [
            external_cluster("local-small", small, 0.05, contextWindow=256),
            external_cluster("local-big", big, 0.5, contextWindow=2048),
        ]
        providers = [
            {
                "name": "premium",
                "type": "openai",
                "apiKey": "k-premium",
                "defaultModel": "gpt-4o",
                "baseUrl": premium.base_url,
            }
        ]
        document = stack_document(clusters, providers)
        document["modelAliases"] = {"fast": {"targets": ["local-big"]}, "smartest": {"tier": "complex"}}
        document["experiment"] = {
            "name": "first-vs-external",
            "stickyHeader": "x-user",
            "arms": [
                {"name": "clusters", "weight": 3, "strategy": "cluster_first"},
                {"name": "external", "weight": 1, "strategy": "external_first"},
            ],
        }
        document["cache"] = {"enabled": True, "ttl": "5m"}
        document["auth"] = {
            "enabled": True,
            "keys": [
                {"name": tenant, "tenant": tenant, "keyHash": "sha256:" + hashlib.sha256(key.encode()).hexdigest()}
                for tenant, key in KEYS.items()
            ],
        }
        with run_stack(document, tmp / "stack") as stack:
            yield Setup(stack, premium)


def test_simple_prompts_land_on_a_cluster_and_complex_ones_on_the_premium_target(setup: Setup) -> None:
    override = {"headers": {"x-llm-router-strategy": "hybrid"}}
    simple = setup.chat("What is the capital of France?", **override)
    assert simple.headers["x-llm-router-target"] == "local-small"
    complex_ = setup.chat(COMPLEX_PROMPT, **override)
    assert complex_.headers["x-llm-router-target"] == "premium"
    assert complex_.headers["x-llm-router-reason"] == "external_complex_prompt"


def test_an_over_long_prompt_skips_the_small_context_cluster(setup: Setup) -> None:
    long_prompt = "Please summarise: " + "the cat sat on the mat. " * 80  # ~500 tokens, over local-small's 256
    response = setup.chat(long_prompt, headers={"x-llm-router-strategy": "cluster_first"})
    assert response.headers["x-llm-router-target"] == "local-big"


def test_model_aliases_resolve(setup: Setup) -> None:
    fast = setup.chat("Hi", model="fast", headers={"x-llm-router-strategy": "cost"})
    assert fast.headers["x-llm-router-target"] == "local-big"
    smartest = setup.chat("Hi", model="smartest", headers={"x-llm-router-strategy": "hybrid"})
    assert smartest.headers["x-llm-router-target"] == "premium"
    assert smartest.json()["model"] == "gpt-4o", "the response's model says what served it"


def test_ab_split_follows_its_weights_and_is_sticky(setup: Setup) -> None:
    arms = Counter()
    for user in range(300):
        response = setup.chat("Hi", headers={"x-user": f"user-{user}"})
        arms[response.headers["x-llm-router-arm"]] += 1
        expected_target_kind = "local" if response.headers["x-llm-router-arm"] == "clusters" else "premium"
        assert response.headers["x-llm-router-target"].startswith(expected_target_kind)
    share = arms["clusters"] / 300
    print(f"A/B arms over 300 users: {dict(arms)} ({share:.1%} clusters, weight 75%)")
    assert 0.65 <= share <= 0.85
    again = {setup.chat("Hi", headers={"x-user": "user-7"}).headers["x-llm-router-arm"] for _ in range(5)}
    assert len(again) == 1
    metrics = httpx.get(f"{setup.stack.url}/metrics", timeout=10).text
    assert 'llm_router_experiment_requests_total{arm="clusters",experiment="first-vs-external"' in metrics


def test_a_cache_hit_returns_the_identical_body_without_reaching_a_target(setup: Setup) -> None:
    question = {"temperature": 0, "headers": {"x-llm-router-strategy": "external_first"}}
    first = setup.chat("Cache me: what is 6 x 7?", **question)
    assert first.headers["x-llm-router-target"] == "premium"
    reached = len(setup.premium.requests)
    second = setup.chat("Cache me: what is 6 x 7?", **question)
    assert second.headers.get("x-llm-router-cache") == "hit"
    assert second.content == first.content
    assert len(setup.premium.requests) == reached, "a hit never reaches the target"
    other_tenant = setup.chat("Cache me: what is 6 x 7?", tenant="team-b", **question)
    assert other_tenant.headers.get("x-llm-router-cache") is None
    assert len(setup.premium.requests) == reached + 1, "never shared across tenants"
