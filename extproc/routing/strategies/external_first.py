"""external_first: the cheapest external provider, self-hosted clusters only as fallback."""

from extproc.routing.decision import Ranking, StrategyInput, by_cost, clusters_of, providers_of


def rank(given: StrategyInput) -> Ranking:
    providers = by_cost(providers_of(given.candidates))
    clusters = by_cost(clusters_of(given.candidates))
    if providers:
        return Ranking(providers + clusters, "provider_available", "an external provider can take the request")
    return Ranking(clusters, "no_provider", "no external provider available: cluster")
