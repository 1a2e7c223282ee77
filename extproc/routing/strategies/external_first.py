"""external_first: the cheapest external provider, self-hosted clusters only as fallback."""

from extproc.routing.decision import Ranking, StrategyInput, clusters_and_providers_by_cost


def rank(given: StrategyInput) -> Ranking:
    clusters, providers = clusters_and_providers_by_cost(given.candidates)
    if providers:
        return Ranking(providers + clusters, "provider_available", "an external provider can take the request")
    return Ranking(clusters, "no_provider", "no external provider available: cluster")
