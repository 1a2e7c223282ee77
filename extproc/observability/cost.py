"""What an attempt's actual cost says: how far the estimate was off, and what the baseline model would have cost."""

from __future__ import annotations

from extproc.config.model import Config
from extproc.metrics import Metrics
from extproc.providers.base import Usage


class CostReport:
    def __init__(self, config: Config, metrics: Metrics) -> None:
        self.metrics = metrics
        self.baseline = config.observability.baseline_model
        self._price = config.prices[self.baseline] if self.baseline else None

    def baseline_cost(self, usage: Usage) -> float | None:
        """The same usage priced at the baseline model (USD), or None without a baseline."""
        if self._price is None:
            return None
        return (usage.prompt_tokens * self._price.input + usage.completion_tokens * self._price.output) / 1e6

    def record(self, target: str, usage: Usage, actual: float, estimated: float | None) -> float | None:
        """Observe the estimate error and add to the baseline spend; returns the baseline cost."""
        if estimated:
            self.metrics.cost_estimate_ratio.labels(target).observe(actual / estimated)
        baseline = self.baseline_cost(usage)
        if baseline is not None:
            self.metrics.baseline_cost.labels(target, self.baseline).inc(baseline)
        return baseline
