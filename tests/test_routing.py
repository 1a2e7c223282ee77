"""Unit tests: token estimates, pricing, and every strategy's choice."""

from __future__ import annotations

import pytest

from extproc.routing import tokens
from extproc.routing.model_groups import listed_models
from extproc.routing.request import BadRequest
from extproc.routing.router import NoTarget
from extproc.routing.targets import build_targets, cluster_price_per_1k
from tests.routing_fixtures import chat, router_with_healthy_clusters, two_clusters_three_providers

COMPLEX_PROMPT = (
    "Prove step by step that the algorithm below is correct, analyze its time complexity, compare it with "
    "two alternatives and explain the trade-offs. It must handle at least three edge cases.\n"
    "```python\ndef f(xs):\n    return sorted(set(xs))\n```\n"
    "Derive a closed form for the recurrence T(n) = 2T(n/2) + n and justify each step."
)


def names(chain: list) -> list[str]:
    return [c.target.name for c in chain]


def test_text_tokens_are_four_characters_each_rounded_up() -> None:
    assert tokens.text_tokens("") == 0
    assert tokens.text_tokens("abcd") == 1
    assert tokens.text_tokens("abcde") == 2


def test_prompt_tokens_count_message_overhead_and_priming() -> None:
    messages = [{"role": "system", "content": "abcd"}, {"role": "user", "content": "abcdefgh"}]
    assert tokens.prompt_tokens(messages) == 3 + (4 + 1) + (4 + 2)


def test_content_parts_and_images_are_counted() -> None:
    parts = [{"type": "text", "text": "abcdefgh"}, {"type": "image_url", "image_url": {"url": "x"}}]
    assert tokens.content_tokens(parts) == 2 + tokens.TOKENS_PER_IMAGE


def test_cluster_price_from_cost_per_hour_and_throughput() -> None:
    # $0.36/h at 100 tok/s = 360k tokens/h -> $0.001 per 1K tokens
    assert cluster_price_per_1k(0.36, 100) == pytest.approx(0.001)


def test_cost_weights_prices_by_token_counts() -> None:
    router = router_with_healthy_clusters(two_clusters_three_providers())
    request = chat("x" * 4000, max_tokens=10)  # ~1000 input tokens, 10 output
    decision = router.decide(request, "cost")
    openai = next(c for c in decision.candidates if c.target.name == "openai")
    expected = (request.input_tokens * 0.15 + 10 * 0.60) / 1e6
    assert openai.cost_usd == pytest.approx(expected)


def test_cost_strategy_picks_the_cheapest_expected_dollars() -> None:
    router = router_with_healthy_clusters(two_clusters_three_providers())
    decision = router.decide(chat(max_tokens=50), "cost")
    costs = [c.cost_usd for c in decision.chain]
    assert costs == sorted(costs)
    assert decision.primary.cost_usd == min(c.cost_usd for c in decision.candidates)


def test_cost_strategy_prefers_input_cheap_provider_for_long_prompts() -> None:
    # gemini-2.0-flash input $0.10/M beats gpt-4o-mini $0.15/M; clusters are pricier per token here.
    config = two_clusters_three_providers()
    router = router_with_healthy_clusters(config)
    for cluster in config.clusters:
        router.status[cluster.name].mark_polled(False, "down", definite=True)
    decision = router.decide(chat("word " * 20000, max_tokens=1), "cost")
    assert decision.primary.target.name == "gemini"


def test_latency_strategy_picks_the_lowest_expected_latency() -> None:
    router = router_with_healthy_clusters(two_clusters_three_providers())
    decision = router.decide(chat(max_tokens=100), "latency")
    assert decision.primary.latency_ms == min(c.latency_ms for c in decision.candidates)


def test_hybrid_sends_simple_prompts_to_the_cheapest_cluster() -> None:
    router = router_with_healthy_clusters(two_clusters_three_providers())
    decision = router.decide(chat("What is the capital of France?"), "hybrid")
    assert decision.primary.target.name == "cheap"
    assert decision.reason == "cluster_cheap"
    assert names(decision.chain)[1] in ("dear", "openai", "gemini", "claude")


def test_hybrid_sends_complex_prompts_to_a_capable_provider() -> None:
    router = router_with_healthy_clusters(two_clusters_three_providers())
    decision = router.decide(chat(COMPLEX_PROMPT), "hybrid")
    assert not decision.primary.target.is_cluster
    assert decision.primary.target.tier >= decision.complexity.tier
    assert decision.reason == "external_complex_prompt"


def test_hybrid_goes_external_when_clusters_are_down() -> None:
    config = two_clusters_three_providers()
    router = router_with_healthy_clusters(config)
    for cluster in config.clusters:
        router.status[cluster.name].mark_polled(False, "down", definite=True)
    decision = router.decide(chat(), "hybrid")
    assert not decision.primary.target.is_cluster
    assert decision.reason == "external_no_cluster_available"


def test_hybrid_goes_external_when_cluster_price_is_over_threshold() -> None:
    router = router_with_healthy_clusters(two_clusters_three_providers(clusterCostThreshold=0.0000001))
    decision = router.decide(chat(), "hybrid")
    assert decision.reason == "external_cluster_over_threshold"


def test_cluster_first_and_external_first_order_by_kind() -> None:
    router = router_with_healthy_clusters(two_clusters_three_providers(maxFallbacks=4))
    assert [c.target.is_cluster for c in router.decide(chat(), "cluster_first").chain] == [True] * 2 + [False] * 3
    assert [c.target.is_cluster for c in router.decide(chat(), "external_first").chain] == [False] * 3 + [True] * 2


def test_cluster_first_without_fallback_never_goes_external() -> None:
    config = two_clusters_three_providers(enableExternalFallback=False)
    router = router_with_healthy_clusters(config)
    assert all(c.target.is_cluster for c in router.decide(chat(), "cluster_first").chain)
    for cluster in config.clusters:
        router.status[cluster.name].mark_polled(False, "down", definite=True)
    with pytest.raises(NoTarget) as caught:
        router.decide(chat(), "cluster_first")
    assert caught.value.status == 503


def test_capability_picks_cheapest_target_covering_the_tier() -> None:
    router = router_with_healthy_clusters(two_clusters_three_providers())
    simple = router.decide(chat("Hi"), "capability")
    assert simple.primary.target.name == "cheap"
    hard = router.decide(chat(COMPLEX_PROMPT), "capability")
    assert hard.primary.target.tier >= hard.complexity.tier


def test_chain_length_is_one_plus_max_fallbacks() -> None:
    router = router_with_healthy_clusters(two_clusters_three_providers(maxFallbacks=1))
    assert len(router.decide(chat(), "cost").chain) == 2


def test_context_window_excludes_small_targets_and_reports_400_when_none_fits() -> None:
    router = router_with_healthy_clusters(two_clusters_three_providers())
    decision = router.decide(chat("word " * 5000), "cost")  # ~6K tokens: over the clusters' 4096
    assert all(not c.target.is_cluster for c in decision.chain)
    skipped = {c.target.name: c.skip for c in decision.candidates if c.skip}
    assert skipped["cheap"].startswith("context window 4096")
    with pytest.raises(NoTarget) as caught:
        router.decide(chat("word " * 1_200_000), "cost")
    assert (caught.value.status, caught.value.code) == (400, "context_length_exceeded")


def test_queue_over_limit_skips_the_cluster() -> None:
    router = router_with_healthy_clusters(two_clusters_three_providers())
    router.status["cheap"].queue_depth = 11
    decision = router.decide(chat(), "hybrid")
    assert decision.primary.target.name == "dear"


def test_unknown_strategy_override_is_a_bad_request() -> None:
    router = router_with_healthy_clusters(two_clusters_three_providers())
    assert router.strategy_for("latency") == "latency"
    with pytest.raises(BadRequest):
        router.strategy_for("fastest-please")


def test_the_model_list_names_each_model_once_with_who_serves_it() -> None:
    config = two_clusters_three_providers()
    assert [c.model for c in config.clusters] == ["local", "local"]
    assert listed_models(config, build_targets(config)) == {
        "auto": "llm-router",
        "local": "self-hosted",
        "gpt-4o-mini": "openai",
        "claude-sonnet-4-20250514": "claude",
        "gemini-2.0-flash": "gemini",
    }
