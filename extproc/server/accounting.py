"""What a finished attempt cost, from the usage its target reported, into the metrics and its tenant's budget."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from extproc.auth.gate import Gate
from extproc.metrics import Metrics
from extproc.providers.base import Usage
from extproc.routing.estimate import Estimate
from extproc.routing.router import Router

if TYPE_CHECKING:
    from extproc.server.attempt_exchange import AttemptExchange


def actual_cost(usage: Usage, prices: Estimate) -> float:
    return (usage.prompt_tokens * prices.input_per_1k + usage.completion_tokens * prices.output_per_1k) / 1000.0


class Accounting:
    def __init__(self, metrics: Metrics, router: Router, gate: Gate) -> None:
        self.metrics = metrics
        self.router = router
        self.gate = gate

    def record(self, attempt: AttemptExchange) -> float | None:
        """The attempt's actual cost in USD (None without reported usage), added to spend and budget."""
        target = attempt.target
        if target is None:
            return None
        duration = time.monotonic() - attempt.started
        self.metrics.request_duration.labels(target.name).observe(duration)
        arm = self._experiment_arm(attempt)
        if arm:
            self.metrics.experiment_duration.labels(*arm).observe(duration)
        usage = attempt.usage
        if usage is None:
            return None
        expected = attempt.expected_tokens()
        if expected is not None:
            self.router.guards.on_usage(target.name, expected, usage.total_tokens)
        self.metrics.tokens.labels(target.family, "input").inc(usage.prompt_tokens)
        self.metrics.tokens.labels(target.family, "output").inc(usage.completion_tokens)
        prices = self.router.estimate(target, 0, 0)
        cost = actual_cost(usage, prices)
        self.metrics.spend.labels(attempt.tenant, target.name, target.model).inc(cost)
        self.gate.record_spend(attempt.tenant, cost)
        if arm:
            self.metrics.experiment_spend.labels(*arm).inc(cost)
        return cost

    def _experiment_arm(self, attempt: AttemptExchange) -> tuple[str, str] | None:
        experiment = self.router.config.experiment
        if experiment is None or attempt.decision is None or attempt.decision.arm is None:
            return None
        return experiment.name, attempt.decision.arm
