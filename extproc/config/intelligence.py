"""Config sections for routing intelligence: model aliases, the A/B experiment, the response cache."""

from __future__ import annotations

from extproc.config.model import STRATEGIES, CacheConfig, Experiment, ExperimentArm, ModelAlias
from extproc.config.reader import Reader
from extproc.routing.complexity import Tier


def parse_model_aliases(r: Reader) -> tuple[ModelAlias, ...]:
    """`modelAliases: {gpt-4: {tier: complex}, fast: {targets: [local-aws, gemini]}}`"""
    aliases = []
    for name in r.node:
        entry = r.section(name)
        tier_text = entry.string("tier")
        tier = None
        if tier_text is not None:
            try:
                tier = Tier.parse(tier_text)
            except ValueError as exc:
                entry.problems.add(entry.at("tier"), str(exc))
        targets = entry.strings("targets")
        aliases.append(ModelAlias(str(name), tier, frozenset(targets) if targets else None))
        entry.finish()
    r.finish()
    return tuple(aliases)


def parse_experiment(r: Reader) -> Experiment | None:
    """`experiment: {name: cost-vs-hybrid, stickyHeader: x-user, arms: [{name: a, weight: 50, strategy: cost}]}`"""
    if not r.node:
        return None
    name = r.string("name", "experiment") or "experiment"
    arms = []
    for at, node in r.items("arms"):
        arm = Reader(node, at, r.problems)
        arms.append(
            ExperimentArm(
                name=arm.string("name", required=True) or "",
                weight=arm.number("weight", 1.0, positive=True) or 1.0,
                strategy=arm.choice("strategy", STRATEGIES, "hybrid"),
            )
        )
        arm.finish()
    if len(arms) < 2:
        r.problems.add(r.at("arms"), "an experiment needs at least two arms")
    sticky = r.string("stickyHeader")
    r.finish()
    return Experiment(name, tuple(arms), sticky.lower() if sticky else None)


def parse_cache(r: Reader) -> CacheConfig:
    d = CacheConfig()
    cache = CacheConfig(
        enabled=r.boolean("enabled", d.enabled),
        max_entries=r.integer("maxEntries", d.max_entries, minimum=1),
        max_entry_bytes=r.size("maxEntryBytes", d.max_entry_bytes),
        ttl=r.duration("ttl", d.ttl),
    )
    r.finish()
    return cache
