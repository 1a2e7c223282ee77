"""What a finished request cost, from the usage its target reported, into the metrics."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from extproc.metrics import Metrics
from extproc.providers.base import Usage
from extproc.routing.estimate import Estimate

if TYPE_CHECKING:
    from extproc.server.exchange import Exchange


def actual_cost(usage: Usage, prices: Estimate) -> float:
    return (
        usage.prompt_tokens * prices.input_per_1k + usage.completion_tokens * prices.output_per_1k
    ) / 1000.0


class Accounting:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def record(self, exchange: Exchange) -> None:
        target, decision = exchange.target, exchange.decision
        if target is None or decision is None:
            return
        self.metrics.request_duration.labels(target.name).observe(time.monotonic() - exchange.started)
        usage = exchange.usage
        if usage is None:
            return
        self.metrics.tokens.labels(target.family, "input").inc(usage.prompt_tokens)
        self.metrics.tokens.labels(target.family, "output").inc(usage.completion_tokens)
        self.metrics.spend.labels(target.name, target.model).inc(
            actual_cost(usage, decision.primary.estimate)
        )
