"""latency: the lowest expected latency (queue wait + prompt + generation time) for this request."""

from extproc.routing.decision import Ranking, StrategyInput


def rank(given: StrategyInput) -> Ranking:
    order = sorted(given.candidates, key=lambda c: (c.latency_ms, c.cost_usd))
    return Ranking(order, "fastest", f"lowest expected latency {order[0].latency_ms:.0f} ms")
