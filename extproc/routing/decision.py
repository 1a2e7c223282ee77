"""Candidates, rankings and the decision a strategy produces."""

from __future__ import annotations

from dataclasses import dataclass, field

from extproc.config.model import RouterConfig
from extproc.routing.complexity import Complexity
from extproc.routing.estimate import Estimate
from extproc.routing.targets import Target


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


@dataclass(frozen=True, slots=True)
class StrategyInput:
    """What a strategy sees: the eligible candidates and the facts about the request."""

    candidates: list[Candidate]
    complexity: Complexity
    router: RouterConfig


@dataclass(frozen=True, slots=True)
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


def by_cost(candidates: list[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (c.cost_usd, c.latency_ms))


def clusters_of(candidates: list[Candidate]) -> list[Candidate]:
    return [c for c in candidates if c.target.is_cluster]


def providers_of(candidates: list[Candidate]) -> list[Candidate]:
    return [c for c in candidates if not c.target.is_cluster]
