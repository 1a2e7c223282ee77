"""Candidates, rankings and the decision a strategy produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter

from extproc.config.model import RouterConfig
from extproc.routing.complexity import Complexity, Tier
from extproc.routing.estimate import Estimate
from extproc.routing.targets import Target

TIER_NAMES = {tier: tier.name.lower() for tier in Tier}  # for reasons and details: `Tier.name` is a slow lookup


@dataclass(slots=True)
class Candidate:
    target: Target
    estimate: Estimate
    skip: str | None = None  # why the target was excluded before ranking (unhealthy, too small, ...)

    @property
    def cost_usd(self) -> float:
        return self.estimate.cost_usd

    @property
    def latency_ms(self) -> float:
        return self.estimate.latency_ms


# StrategyInput and Ranking are not frozen: one of each per request, and a frozen init costs ~3x. Read-only.
@dataclass(slots=True)
class StrategyInput:
    """What a strategy sees: the eligible candidates and the facts about the request."""

    candidates: list[Candidate]
    complexity: Complexity
    router: RouterConfig


@dataclass(slots=True)
class Ranking:
    order: list[Candidate]  # best first
    reason: str  # low-cardinality code: a metrics label and the x-llm-router-reason header
    detail: str  # one human sentence for logs and explain


@dataclass(slots=True)
class Decision:
    strategy: str
    chain: list[Candidate]  # primary first, then fallbacks
    reason: str
    detail: str
    complexity: Complexity
    input_tokens: int
    output_tokens: int
    candidates: list[Candidate] = field(default_factory=list)  # all of them, skipped ones included
    arm: str | None = None  # the A/B experiment arm that chose the strategy, if any

    @property
    def primary(self) -> Candidate:
        return self.chain[0]


_COST_THEN_LATENCY = attrgetter("estimate.cost_usd", "estimate.latency_ms")  # a C-level key: no lambda per item


def by_cost(candidates: list[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=_COST_THEN_LATENCY)


def clusters_and_providers_by_cost(candidates: list[Candidate]) -> tuple[list[Candidate], list[Candidate]]:
    """The cluster candidates and the provider candidates, each by cost."""
    clusters: list[Candidate] = []
    providers: list[Candidate] = []
    for c in candidates:
        if c.target.is_cluster:
            clusters.append(c)
        else:
            providers.append(c)
    return by_cost(clusters), by_cost(providers)
