"""Prometheus metrics, with the seed's names. Labels carry target names and codes, never secrets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.routing_decisions = Counter(
            "llm_router_routing_decisions",
            "Routing decisions by chosen target, target type and reason",
            ["target", "type", "reason"],
            registry=r,
        )
        self.requests = Counter(
            "llm_router_requests",
            "Routed requests by target and HTTP status",
            ["target", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "llm_router_request_duration_seconds",
            "Time from routing decision to the end of the response",
            ["target"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self.tokens = Counter(
            "llm_router_tokens",
            "Tokens reported by targets, by provider family and type (input/output)",
            ["provider", "type"],
            registry=r,
        )
        self.spend = Counter(
            "llm_router_spend_usd", "Actual spend from reported usage", ["target", "model"], registry=r
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
        self.fallbacks = Counter(
            "llm_router_fallbacks",
            "Attempts moved to the next target of a chain, with why the previous one was left",
            ["from", "to", "reason"],
            registry=r,
        )
        self.bad_requests = Counter(
            "llm_router_rejected_requests",
            "Requests answered by the router itself with an error",
            ["status", "code"],
            registry=r,
        )
