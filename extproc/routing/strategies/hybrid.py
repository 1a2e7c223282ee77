"""hybrid: prompts a cluster can serve go to a cheap cluster; the rest to the cheapest capable provider.

A cluster is cheap when its $/1K (from live throughput) is under `clusterCostThreshold`. With no cheap,
capable, healthy cluster the request goes external; with no provider, to any cluster that is left.
"""

from extproc.routing.decision import Candidate, Ranking, StrategyInput, by_cost, clusters_of, providers_of


def rank(given: StrategyInput) -> Ranking:
    tier = given.complexity.tier
    threshold = given.router.cluster_cost_threshold
    clusters = clusters_of(given.candidates)
    capable_clusters = [c for c in clusters if c.target.tier >= tier]
    cheap = by_cost([c for c in capable_clusters if c.estimate.output_per_1k < threshold])
    providers = _capable_first(providers_of(given.candidates), given)
    if cheap:
        fallback = providers if given.router.enable_external_fallback else []
        rest = by_cost([c for c in clusters if c not in cheap])
        return Ranking(
            cheap + fallback + rest,
            "cluster_cheap",
            f"{tier.name.lower()} prompt; cluster ${cheap[0].estimate.output_per_1k:.6f}/1K "
            f"under threshold ${threshold}/1K",
        )
    if providers:
        why = _why_external(clusters, capable_clusters)
        return Ranking(providers + by_cost(clusters), f"external_{why}", f"external provider: {why}")
    return Ranking(by_cost(clusters), "cluster_only", "no external provider: best available cluster")


def _capable_first(providers: list[Candidate], given: StrategyInput) -> list[Candidate]:
    tier = given.complexity.tier
    return by_cost([c for c in providers if c.target.tier >= tier]) + by_cost(
        [c for c in providers if c.target.tier < tier]
    )


def _why_external(clusters: list[Candidate], capable: list[Candidate]) -> str:
    if not clusters:
        return "no_cluster_available"
    if not capable:
        return "complex_prompt"
    return "cluster_over_threshold"
