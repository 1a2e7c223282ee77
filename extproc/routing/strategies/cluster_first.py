"""cluster_first: any healthy self-hosted cluster (cheapest first), external providers only as fallback."""

from extproc.routing.decision import Ranking, StrategyInput, clusters_and_providers_by_cost


def rank(given: StrategyInput) -> Ranking:
    clusters, providers = clusters_and_providers_by_cost(given.candidates)
    fallback = providers if given.router.enable_external_fallback else []
    if clusters:
        return Ranking(clusters + fallback, "cluster_available", "a healthy cluster can take the request")
    return Ranking(fallback, "no_cluster", "no healthy cluster with room: external provider")
