"""cost: the lowest expected dollars for this request, whatever the target."""

from extproc.routing.decision import Ranking, StrategyInput, by_cost


def rank(given: StrategyInput) -> Ranking:
    order = by_cost(given.candidates)
    return Ranking(order, "cheapest", f"lowest expected cost ${order[0].cost_usd:.6f}")
