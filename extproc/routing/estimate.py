"""Expected dollars and milliseconds of one request on one target."""

from __future__ import annotations

from dataclasses import dataclass

from extproc.clusters.status import TargetStatus
from extproc.routing.targets import PROVIDER_TTFT_MS, Target, cluster_price_per_1k

# Prompt processing is far faster than generation on llama.cpp; until measured, assume this ratio.
PROMPT_SPEEDUP = 10.0


# Not frozen: one is built per target on every request and a frozen init costs ~3x; treat it as read-only.
@dataclass(slots=True)
class Estimate:
    cost_usd: float
    latency_ms: float
    input_per_1k: float
    output_per_1k: float


def estimate(target: Target, status: TargetStatus, input_tokens: int, output_tokens: int) -> Estimate:
    """Cost = input tokens x input price + expected output tokens x output price (not a sum of unit prices)."""
    if target.is_cluster:
        return _cluster_estimate(target, status, input_tokens, output_tokens)
    input_price, output_price = target.input_per_1k, target.output_per_1k
    latency = PROVIDER_TTFT_MS + output_tokens / target.tokens_per_second * 1000.0
    return Estimate(
        _dollars(input_tokens, output_tokens, input_price, output_price), latency, input_price, output_price
    )


def _cluster_estimate(target: Target, status: TargetStatus, input_tokens: int, output_tokens: int) -> Estimate:
    assert target.cluster is not None
    cost_per_hour = target.cluster.cost_per_hour
    generation = status.measured_tokens_per_second or target.tokens_per_second
    prompt = status.measured_prompt_tokens_per_second or generation * PROMPT_SPEEDUP
    price = cluster_price_per_1k(cost_per_hour, generation)
    prompt_price = cluster_price_per_1k(cost_per_hour, prompt)
    per_request_ms = input_tokens / prompt * 1000.0 + output_tokens / generation * 1000.0
    slots = status.slots
    ahead = status.busy - slots + 1  # requests that must finish before a slot frees up for this one
    queue_wait_ms = (ahead if ahead > 0 else 0) / slots * per_request_ms  # not max(): a call costs ~3x
    return Estimate(
        _dollars(input_tokens, output_tokens, prompt_price, price),
        queue_wait_ms + per_request_ms,
        prompt_price,
        price,
    )


def _dollars(input_tokens: int, output_tokens: int, input_per_1k: float, output_per_1k: float) -> float:
    return (input_tokens * input_per_1k + output_tokens * output_per_1k) / 1000.0
