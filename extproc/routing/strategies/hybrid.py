"""hybrid: prompts a cluster can serve go to a cheap cluster; the rest to the cheapest capable provider.

A cluster is cheap when its $/1K (from live throughput) is under `clusterCostThreshold`. With no cheap,
capable, healthy cluster the request goes external; with no provider, to any cluster that is left.
"""

from extproc.routing.complexity import Tier
from extproc.routing.decision import TIER_NAMES, Candidate, Ranking, StrategyInput, by_cost


def rank(given: StrategyInput) -> Ranking:
    tier = given.complexity.tier
    threshold = given.router.cluster_cost_threshold
    cheap, clusters, providers = _groups(given.candidates, tier, threshold)
    if cheap:
        fallback = providers if given.router.enable_external_fallback else []
        return Ranking(
            cheap + fallback + clusters,
            "cluster_cheap",
            f"{TIER_NAMES[tier]} prompt; cluster ${cheap[0].estimate.output_per_1k:.6f}/1K "
            f"under threshold ${threshold}/1K",
        )
    if providers:
        why = _why_external(clusters, tier)
        return Ranking(providers + clusters, f"external_{why}", f"external provider: {why}")
    return Ranking(clusters, "cluster_only", "no external provider: best available cluster")


def _groups(
    candidates: list[Candidate], tier: Tier, threshold: float
) -> tuple[list[Candidate], list[Candidate], list[Candidate]]:
    """Each by cost: the cheap capable clusters, the other clusters, and the providers (capable ones first)."""
    cheap: list[Candidate] = []
    clusters: list[Candidate] = []
    capable: list[Candidate] = []
    weaker: list[Candidate] = []
    for c in candidates:
        if c.target.is_cluster:
            if c.target.tier >= tier and c.estimate.output_per_1k < threshold:
                cheap.append(c)
            else:
                clusters.append(c)
        elif c.target.tier >= tier:
            capable.append(c)
        else:
            weaker.append(c)
    return by_cost(cheap), by_cost(clusters), by_cost(capable) + by_cost(weaker)


def _why_external(clusters: list[Candidate], tier: Tier) -> str:
    if not clusters:
        return "no_cluster_available"
    if not any(c.target.tier >= tier for c in clusters):
        return "complex_prompt"
    return "cluster_over_threshold"
