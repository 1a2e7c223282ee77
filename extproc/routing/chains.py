"""Failover chains as Envoy clusters: one cluster per target, one aggregate cluster per ordered chain.

The controller names the chain a decision wants; the Envoy config holds every chain it could name.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import permutations

from extproc.routing.targets import envoy_cluster_name

CHAIN_SEPARATOR = "+"  # never part of a target name
MAX_CHAIN_CLUSTERS = 2000


def chain_cluster_name(targets: Sequence[str]) -> str:
    if len(targets) == 1:
        return envoy_cluster_name(targets[0])
    return "chain_" + CHAIN_SEPARATOR.join(targets)


def all_chains(targets: Sequence[str], max_fallbacks: int) -> Iterator[tuple[str, ...]]:
    """Every ordered chain of 2 to 1 + max_fallbacks distinct targets."""
    for length in range(2, min(1 + max_fallbacks, len(targets)) + 1):
        yield from permutations(targets, length)


def chain_count(target_count: int, max_fallbacks: int) -> int:
    total, run = 0, 1
    for length in range(1, min(1 + max_fallbacks, target_count) + 1):
        run *= target_count - length + 1
        total += run if length >= 2 else 0
    return total
