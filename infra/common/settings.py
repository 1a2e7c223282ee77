"""Stack settings common to every cloud program, read from Pulumi config with defaults."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

DEFAULT_KUBERNETES_VERSION = "1.34"


@dataclass(frozen=True)
class CommonSettings:
    owner: str
    kubernetes_version: str
    node_count: int
    min_nodes: int
    max_nodes: int
    llm_hostname: str  # where the llm-server chart's Ingress answers (DNS you point at the ingress IP)
    model: str
    context_window: int
    tokens_per_second: float
    node_hourly_price: float  # on-demand list price of one node, for the router's costPerHour

    @classmethod
    def load(cls, config: pulumi.Config, *, default_node_price: float) -> CommonSettings:
        node_count = config.get_int("nodeCount") or 2
        return cls(
            owner=config.get("owner") or "platform",
            kubernetes_version=config.get("kubernetesVersion") or DEFAULT_KUBERNETES_VERSION,
            node_count=node_count,
            min_nodes=config.get_int("minNodes") or 1,
            max_nodes=config.get_int("maxNodes") or max(node_count, 4),
            llm_hostname=config.require("llmHostname"),
            model=config.get("model") or "llama-3.1-8b",
            context_window=config.get_int("contextWindow") or 8192,
            tokens_per_second=config.get_float("tokensPerSecond") or 40.0,
            node_hourly_price=config.get_float("nodeHourlyPrice") or default_node_price,
        )

    @property
    def cost_per_hour(self) -> float:
        return self.node_hourly_price * self.node_count
