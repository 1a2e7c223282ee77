"""Everything a request needs from the controller, in one object that a config reload swaps whole."""

from __future__ import annotations

from dataclasses import dataclass

from extproc.clusters.status import StatusBoard
from extproc.config.model import Config
from extproc.metrics import Metrics
from extproc.routing.router import Router
from extproc.server.accounting import Accounting
from extproc.server.failures import AttemptLog


@dataclass(slots=True)
class Runtime:
    config: Config
    router: Router
    status: StatusBoard
    metrics: Metrics
    accounting: Accounting
    attempts: AttemptLog

    @classmethod
    def build(cls, config: Config, metrics: Metrics | None = None) -> Runtime:
        status = StatusBoard([c.name for c in config.clusters], [p.name for p in config.enabled_providers])
        metrics = metrics or Metrics()
        router = Router(config, status)
        return cls(config, router, status, metrics, Accounting(metrics, router), AttemptLog())
