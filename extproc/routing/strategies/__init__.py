"""Routing strategies: each a `rank(StrategyInput) -> Ranking` function in a module of its own."""

from collections.abc import Callable

from extproc.routing.decision import Ranking, StrategyInput
from extproc.routing.strategies import capability, cluster_first, cost, external_first, hybrid, latency

STRATEGIES: dict[str, Callable[[StrategyInput], Ranking]] = {
    "hybrid": hybrid.rank,
    "cost": cost.rank,
    "latency": latency.rank,
    "cluster_first": cluster_first.rank,
    "external_first": external_first.rank,
    "capability": capability.rank,
}
