"""capability: the cheapest target whose tier covers the prompt's tier; stronger targets as fallback."""

from extproc.routing.decision import Ranking, StrategyInput, by_cost


def rank(given: StrategyInput) -> Ranking:
    tier = given.complexity.tier
    capable = by_cost([c for c in given.candidates if c.target.tier >= tier])
    if capable:
        return Ranking(capable, f"tier_{tier.name.lower()}", f"cheapest target that serves {tier.name.lower()} prompts")
    strongest = max(c.target.tier for c in given.candidates)
    order = by_cost([c for c in given.candidates if c.target.tier == strongest])
    return Ranking(order, "tier_uncovered", f"no target serves {tier.name.lower()} prompts: the strongest tier instead")
