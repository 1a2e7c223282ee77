"""Targets: everything a request can be routed to, precomputed once per config from clusters and providers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from extproc.config.model import ClusterConfig, Config, Limits, ProviderConfig, Url
from extproc.providers.base import Endpoint
from extproc.routing.complexity import Tier

# Translator API per provider type; llama.cpp clusters speak the OpenAI API.
PROVIDER_APIS = {"openai": "openai", "claude": "anthropic", "gemini": "gemini"}
# Until a provider has been observed: time to first token and generation speed (issue: measured later).
PROVIDER_TTFT_MS = 600.0
PROVIDER_TOKENS_PER_SECOND = 80.0


class Kind(StrEnum):
    CLUSTER = "cluster"
    PROVIDER = "provider"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    kind: Kind
    api: str  # translator: openai, anthropic, gemini
    family: str  # aws/gcp/azure/local for clusters; openai/claude/gemini for providers (a metrics label)
    region: str
    model: str
    url: Url
    endpoint: Endpoint
    envoy_cluster: str
    input_per_1k: float  # USD per 1K input tokens (clusters: the prior from declared throughput)
    output_per_1k: float
    context_window: int
    max_output: int
    tier: Tier
    tokens_per_second: float  # declared generation speed (clusters) or the provider prior
    limits: Limits
    cluster: ClusterConfig | None = None
    is_cluster: bool = field(init=False)  # read several times per candidate on every decision

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_cluster", self.kind is Kind.CLUSTER)


def envoy_cluster_name(target_name: str) -> str:
    return f"target_{target_name}"


def cluster_price_per_1k(cost_per_hour: float, tokens_per_second: float) -> float:
    """$/1K tokens of a cluster billed by the hour: costPerHour / (tokens/s x 3600) x 1000."""
    return cost_per_hour / (tokens_per_second * 3600.0) * 1000.0


def build_targets(config: Config) -> tuple[Target, ...]:
    return tuple(_from_cluster(c) for c in config.clusters) + tuple(
        _from_provider(p, config) for p in config.enabled_providers
    )


def _from_cluster(cluster: ClusterConfig) -> Target:
    price = cluster_price_per_1k(cluster.cost_per_hour, cluster.tokens_per_second)
    return Target(
        name=cluster.name,
        kind=Kind.CLUSTER,
        api="openai",
        family=cluster.provider,
        region=cluster.region,
        model=cluster.model,
        url=cluster.endpoint,
        endpoint=Endpoint(base_path=cluster.endpoint.path + "/v1", model=cluster.model, api_key=None),
        envoy_cluster=envoy_cluster_name(cluster.name),
        input_per_1k=price,
        output_per_1k=price,
        context_window=cluster.context_window,
        max_output=cluster.context_window,
        tier=cluster.tier,
        tokens_per_second=cluster.tokens_per_second,
        limits=cluster.limits,
        cluster=cluster,
    )


def _from_provider(provider: ProviderConfig, config: Config) -> Target:
    price = config.prices[provider.default_model]
    return Target(
        name=provider.name,
        kind=Kind.PROVIDER,
        api=PROVIDER_APIS[provider.type],
        family=provider.type,
        region="",
        model=provider.default_model,
        url=provider.base_url,
        endpoint=Endpoint(base_path=provider.base_url.path, model=provider.default_model, api_key=provider.api_key),
        envoy_cluster=envoy_cluster_name(provider.name),
        input_per_1k=price.input / 1000.0,
        output_per_1k=price.output / 1000.0,
        context_window=price.context_window,
        max_output=price.max_output,
        tier=provider.tier if provider.tier is not None else price.tier,
        tokens_per_second=PROVIDER_TOKENS_PER_SECOND,
        limits=provider.limits,
    )
