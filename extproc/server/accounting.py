"""What a finished attempt cost, from the usage its target reported, into the metrics."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from extproc.metrics import Metrics
from extproc.providers.base import Usage
from extproc.routing.estimate import Estimate
from extproc.routing.router import Router

if TYPE_CHECKING:
    from extproc.server.attempt_exchange import AttemptExchange


def actual_cost(usage: Usage, prices: Estimate) -> float:
    return (usage.prompt_tokens * prices.input_per_1k + usage.completion_tokens * prices.output_per_1k) / 1000.0


class Accounting:
    def __init__(self, metrics: Metrics, router: Router) -> None:
        self.metrics = metrics
        self.router = router

    def record(self, attempt: AttemptExchange) -> None:
        target = attempt.target
        if target is None:
            return
        self.metrics.request_duration.labels(target.name).observe(time.monotonic() - attempt.started)
        usage = attempt.usage
        if usage is None:
            return
        self.router.guards.on_usage(target.name, attempt.expected_tokens(), usage.total_tokens)
        self.metrics.tokens.labels(target.family, "input").inc(usage.prompt_tokens)
        self.metrics.tokens.labels(target.family, "output").inc(usage.completion_tokens)
        prices = self.router.estimate(target, 0, 0)
        self.metrics.spend.labels(target.name, target.model).inc(actual_cost(usage, prices))
