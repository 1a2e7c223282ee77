"""Explain a routing decision without calling any target: every candidate, its estimate, and why it won or lost."""

from __future__ import annotations

from typing import Any

import aiohttp

from extproc.clusters.poller import ClusterPoller
from extproc.clusters.status import StatusBoard
from extproc.config.model import Config
from extproc.routing.decision import TIER_NAMES, Candidate, Decision, StrategyInput
from extproc.routing.request import parse_chat_request
from extproc.routing.router import NoTarget, Router
from extproc.routing.strategies import STRATEGIES

BELOW_THE_CHAIN = "ranked below the chain"
POLL_TIMEOUT_SECONDS = 3.0


def explain(router: Router, body: bytes, strategy: str | None = None) -> dict[str, Any]:
    """The decision `router` makes for this request body now; raises BadRequest for an invalid body."""
    request = parse_chat_request(body)
    error = None
    try:
        decision = router.decide(request, router.strategy_for(strategy))
    except NoTarget as refused:
        decision = refused.decision
        error = {"status": refused.status, "code": refused.code, "message": refused.message}
    ranked = _full_ranking(router, decision)
    chain = [c.target.name for c in decision.chain]
    return {
        "strategy": decision.strategy,
        "reason": decision.reason or None,
        "detail": decision.detail or None,
        "target": chain[0] if chain else None,
        "chain": chain,
        "complexity": {"tier": TIER_NAMES[decision.complexity.tier], "score": round(decision.complexity.score, 4)},
        "input_tokens": decision.input_tokens,
        "expected_output_tokens": decision.output_tokens,
        "candidates": [_candidate(c, decision, ranked) for c in decision.candidates],
        "error": error,
    }


async def explain_with_config(config: Config, body: bytes, strategy: str | None, poll: bool) -> dict[str, Any]:
    """Explain outside a running controller: each cluster's status from one poll of its /health and /metrics
    (no completion is sent), or with `poll` False every cluster assumed ready at its declared throughput."""
    board = StatusBoard([c.name for c in config.clusters], [p.name for p in config.enabled_providers])
    if poll:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POLL_TIMEOUT_SECONDS)) as session:
            await ClusterPoller(config.clusters, board, config.router.health_check_interval).poll_once(session)
    else:
        for cluster in config.clusters:
            board[cluster.name].mark_polled(True)
    return explain(Router(config, board), body, strategy)


def _full_ranking(router: Router, decision: Decision) -> list[str]:
    """The strategy's whole order over the eligible candidates (the decision keeps only the chain's head)."""
    eligible = [c for c in decision.candidates if c.skip is None]
    if not eligible:
        return []
    ranking = STRATEGIES[decision.strategy](StrategyInput(eligible, decision.complexity, router.config.router))
    return [c.target.name for c in ranking.order]


def _candidate(candidate: Candidate, decision: Decision, ranked: list[str]) -> dict[str, Any]:
    target = candidate.target
    name = target.name
    chain = [c.target.name for c in decision.chain]
    rank = ranked.index(name) + 1 if name in ranked else None
    if candidate.skip is not None:
        outcome, why = "skipped", candidate.skip
    elif name in chain and chain.index(name) == 0:
        outcome, why = "chosen", f"{decision.reason}: {decision.detail}"
    elif name in chain:
        position = chain.index(name)
        outcome, why = f"fallback {position}", f"ranked {rank} by {decision.strategy}: fallback {position} of the chain"
    elif rank is not None:
        outcome = BELOW_THE_CHAIN
        why = f"ranked {rank} by {decision.strategy}; the chain holds {len(chain)} (router.maxFallbacks)"
    else:
        outcome, why = "not ranked", f"{decision.strategy} does not consider it for this request"
    return {
        "target": name,
        "kind": target.kind.value,
        "model": target.model,
        "tier": TIER_NAMES[target.tier],
        "estimated_cost_usd": candidate.cost_usd,
        "estimated_latency_ms": round(candidate.latency_ms, 1),
        "input_per_1k_usd": candidate.estimate.input_per_1k,
        "output_per_1k_usd": candidate.estimate.output_per_1k,
        "eligible": candidate.skip is None,
        "rank": rank,
        "outcome": outcome,
        "why": why,
    }
