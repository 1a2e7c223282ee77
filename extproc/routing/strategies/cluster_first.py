"""cluster_first: any healthy self-hosted cluster (cheapest first), external providers only as fallback."""

from extproc.routing.decision import Ranking, StrategyInput, by_cost, clusters_of, providers_of


def rank(given: StrategyInput) -> Ranking:
    clusters = by_cost(clusters_of(given.candidates))
    providers = by_cost(providers_of(given.candidates))
    fallback = providers if given.router.enable_external_fallback else []
    if clusters:
        return Ranking(clusters + fallback, "cluster_available", "a healthy cluster can take the request")
    return Ranking(fallback, "no_cluster", "no healthy cluster with room: external provider")
