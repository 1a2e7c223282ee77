"""capability: the cheapest target whose tier covers the prompt's tier; stronger targets as fallback."""

from extproc.routing.decision import TIER_NAMES, Ranking, StrategyInput, by_cost


def rank(given: StrategyInput) -> Ranking:
    tier = given.complexity.tier
    words = TIER_NAMES[tier]
    capable = by_cost([c for c in given.candidates if c.target.tier >= tier])
    if capable:
        return Ranking(capable, f"tier_{words}", f"cheapest target that serves {words} prompts")
    strongest = max(c.target.tier for c in given.candidates)
    order = by_cost([c for c in given.candidates if c.target.tier == strongest])
    return Ranking(order, "tier_uncovered", f"no target serves {words} prompts: the strongest tier instead")
