"""latency: the lowest expected latency (queue wait + prompt + generation time) for this request."""

from operator import attrgetter

from extproc.routing.decision import Ranking, StrategyInput

_LATENCY_THEN_COST = attrgetter("estimate.latency_ms", "estimate.cost_usd")  # a C-level key: no lambda per item


def rank(given: StrategyInput) -> Ranking:
    order = sorted(given.candidates, key=_LATENCY_THEN_COST)
    return Ranking(order, "fastest", f"lowest expected latency {order[0].latency_ms:.0f} ms")
