"""What the router config needs from a cloud cluster: its `clusters:` entry, ready to paste."""

from __future__ import annotations

from typing import Any


def router_cluster(
    *,
    name: str,
    hostname: str,
    region: str,
    provider: str,
    cost_per_hour: float,
    tokens_per_second: float,
    model: str,
    context_window: int,
    secret_env: str,
) -> dict[str, Any]:
    """The entry for this cluster in the router YAML (the llm-server chart's HMAC gateway at `hostname`)."""
    return {
        "name": name,
        "endpoint": router_endpoint(hostname),
        "region": region,
        "provider": provider,
        "costPerHour": round(cost_per_hour, 4),
        "tokensPerSecond": tokens_per_second,
        "model": model,
        "contextWindow": context_window,
        "authType": "hmac",
        "sharedSecret": f"${{{secret_env}}}",
    }


def router_endpoint(hostname: str) -> str:
    return f"https://{hostname}"


def secret_env_name(cloud: str, region: str) -> str:
    """e.g. AWS_US_WEST_2_CLUSTER_SECRET: the variable the router config reads the HMAC key from."""
    return f"{cloud}_{region}_CLUSTER_SECRET".upper().replace("-", "_")
