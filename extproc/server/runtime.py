"""Everything a request needs from the controller, in one object that a config reload swaps whole."""

from __future__ import annotations

from dataclasses import dataclass

from extproc.auth.gate import Gate
from extproc.clusters.status import StatusBoard
from extproc.config.model import Config
from extproc.metrics import Metrics
from extproc.observability.observer import Observer
from extproc.routing.experiments import ExperimentSplit
from extproc.routing.response_cache import ResponseCache
from extproc.routing.router import Router
from extproc.server.accounting import Accounting
from extproc.server.failures import AttemptLog
from extproc.server.prepared import PreparedAttempts


@dataclass(slots=True)
class Runtime:
    config: Config
    router: Router
    status: StatusBoard
    metrics: Metrics
    accounting: Accounting
    attempts: AttemptLog
    gate: Gate  # client keys, tenants, rate limits and budgets
    observer: Observer  # decision log, cost vs estimate and baseline, tracing

    cache: ResponseCache
    split: ExperimentSplit | None  # the A/B experiment, when one is configured
    prepared: PreparedAttempts  # first attempts the router's ext_proc sent on, until Envoy logs their end

    @classmethod
    def build(cls, config: Config, previous: Runtime | None = None) -> Runtime:
        """A runtime for `config`; after a reload, what is known of targets that stay is carried over."""
        status = StatusBoard([c.name for c in config.clusters], [p.name for p in config.enabled_providers])
        if previous is not None:
            status.carry_over(previous.status)
        metrics = previous.metrics if previous is not None else Metrics()
        router = Router(config, status)
        gate = Gate(config.auth, config.router.routing_strategy, metrics, previous.gate if previous else None)
        observer = Observer(config, metrics, router.targets, previous.observer if previous else None)
        return cls(
            config,
            router,
            status,
            metrics,
            Accounting(metrics, router, gate),
            AttemptLog(),
            gate,
            observer,
            ResponseCache(config.cache),
            ExperimentSplit(config.experiment) if config.experiment else None,
            previous.prepared if previous else PreparedAttempts(config.server.request_timeout or 300.0),
        )
