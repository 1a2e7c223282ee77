"""Prometheus metrics, with the seed's names. Labels carry target names and codes, never secrets."""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client import Gauge as _Gauge
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector

# Set (by `serve --workers`) for several controller processes: their metrics are summed through this directory.
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Gauges are set when /metrics is scraped (or per cluster poll): the worker that set one last is right.
Gauge = partial(_Gauge, multiprocess_mode="mostrecent")


class Memo:
    """A metric on the request path: its labelled children are kept (prometheus_client's `labels()` checks the
    values and takes a lock on every call, several microseconds each)."""

    __slots__ = ("_children", "metric")

    def __init__(self, metric: MetricWrapperBase) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child

    def __getattr__(self, name: str) -> Any:
        return getattr(self.metric, name)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r: CollectorRegistry | None = self.registry
        if MULTIPROCESS_DIR_ENV in os.environ:  # metrics live in shared files; the registry reads them all
            MultiProcessCollector(self.registry)
            r = None
        self.routing_decisions = Memo(
            Counter(
                "llm_router_routing_decisions",
                "Routing decisions by chosen target, target type and reason",
                ["target", "type", "reason"],
                registry=r,
            )
        )
        self.requests = Memo(
            Counter(
                "llm_router_requests",
                "Routed requests by target and HTTP status",
                ["target", "status"],
                registry=r,
            )
        )
        self.request_duration = Memo(
            Histogram(
                "llm_router_request_duration_seconds",
                "Time from routing decision to the end of the response",
                ["target"],
                registry=r,
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            )
        )
        self.tokens = Memo(
            Counter(
                "llm_router_tokens",
                "Tokens reported by targets, by provider family and type (input/output)",
                ["provider", "type"],
                registry=r,
            )
        )
        self.spend = Memo(
            Counter(
                "llm_router_spend_usd",
                "Actual spend from reported usage, by tenant (anonymous when auth is off)",
                ["tenant", "target", "model"],
                registry=r,
            )
        )
        self.cluster_health = Gauge(
            "llm_router_cluster_health",
            "1 when the cluster is healthy",
            ["cluster", "provider", "region"],
            registry=r,
        )
        self.provider_health = Gauge(
            "llm_router_provider_health", "1 when the provider is available", ["provider", "type"], registry=r
        )
        self.cluster_cost = Gauge(
            "llm_router_cluster_cost_per_1k_tokens",
            "Cluster $/1K tokens from its throughput",
            ["cluster", "provider"],
            registry=r,
        )
        self.provider_cost = Gauge(
            "llm_router_provider_cost_per_1k_tokens",
            "Provider $/1K output tokens",
            ["provider", "model"],
            registry=r,
        )
        self.cluster_queue_depth = Gauge(
            "llm_router_cluster_queue_depth", "Requests waiting for a slot on the cluster", ["cluster"], registry=r
        )
        self.cluster_tokens_per_second = Gauge(
            "llm_router_cluster_tokens_per_second",
            "Cluster generation speed in use for costing (measured, else declared)",
            ["cluster"],
            registry=r,
        )
        self.circuit_open = Gauge(
            "llm_router_circuit_open", "1 while the target's circuit breaker is open", ["target"], registry=r
        )
        self.cache = Counter(
            "llm_router_cache_lookups", "Response cache lookups of deterministic requests", ["result"], registry=r
        )
        self.experiment_requests = Memo(
            Counter(
                "llm_router_experiment_requests",
                "Requests per A/B experiment arm and chosen target",
                ["experiment", "arm", "target"],
                registry=r,
            )
        )
        self.experiment_spend = Memo(
            Counter(
                "llm_router_experiment_spend_usd",
                "Actual spend per A/B experiment arm",
                ["experiment", "arm"],
                registry=r,
            )
        )
        self.experiment_duration = Memo(
            Histogram(
                "llm_router_experiment_duration_seconds",
                "Attempt duration per A/B experiment arm",
                ["experiment", "arm"],
                registry=r,
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            )
        )
        self.fallbacks = Memo(
            Counter(
                "llm_router_fallbacks",
                "Attempts moved to the next target of a chain, with why the previous one was left",
                ["from", "to", "reason"],
                registry=r,
            )
        )
        self.bad_requests = Counter(
            "llm_router_rejected_requests",
            "Requests answered by the router itself with an error",
            ["status", "code"],
            registry=r,
        )
        self.auth_denials = Counter(
            "llm_router_auth_denials",
            "Requests refused by client authentication, by tenant (empty when no key matched) and reason",
            ["tenant", "reason"],
            registry=r,
        )
        # Observability (extproc/observability): estimate error, savings, decision log delivery.
        self.cost_estimate_ratio = Memo(
            Histogram(
                "llm_router_cost_estimate_ratio",
                "Actual cost / estimated cost of each attempt with reported usage",
                ["target"],
                registry=r,
                buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2, 4, 10),
            )
        )
        self.baseline_cost = Memo(
            Counter(
                "llm_router_baseline_cost_usd",
                "What the same usage would have cost on the baseline model (observability.baselineModel)",
                ["target", "model"],
                registry=r,
            )
        )
        self.webhook_sent = Counter(
            "llm_router_decision_webhook_sent", "Decisions delivered to a webhook", ["webhook"], registry=r
        )
        self.webhook_dropped = Counter(
            "llm_router_decision_webhook_dropped",
            "Decisions a webhook never got: its queue was full, or every retry failed",
            ["webhook", "reason"],
            registry=r,
        )
        self.webhook_queue = Gauge(  # each worker's own queue: summed across `serve --workers`
            "llm_router_decision_webhook_queue",
            "Decisions waiting for a webhook",
            ["webhook"],
            registry=r,
            multiprocess_mode="livesum",
        )
