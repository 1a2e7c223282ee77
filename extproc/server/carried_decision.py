"""The decision, carried from the router's ext_proc to each attempt's ext_proc as Envoy dynamic metadata.

Metadata rather than controller memory, so that any controller replica can serve any attempt; and rather
than a header, so that it never leaves Envoy and every retry sees it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from extproc.routing.decision import Decision


@dataclass(frozen=True, slots=True)
class CarriedDecision:
    strategy: str
    reason: str
    chain: tuple[str, ...]
    estimated_cost_usd: tuple[float, ...]  # per chain element
    context: dict[str, Any] | None = None  # for the decision log and tracing (extproc.observability.observer)
    arm: str | None = None  # the A/B experiment arm that chose the strategy
    cache_key: str | None = None  # where to keep the response for identical deterministic requests
    prepared: bool = False  # the router's ext_proc rewrote the request for the first target itself

    @classmethod
    def of(
        cls,
        decision: Decision,
        context: dict[str, Any] | None = None,
        cache_key: str | None = None,
        prepared: bool = False,
    ) -> CarriedDecision:
        return cls(
            decision.strategy,
            decision.reason,
            tuple(c.target.name for c in decision.chain),
            tuple(round(c.cost_usd, 10) for c in decision.chain),
            context,
            decision.arm,
            cache_key,
            prepared,
        )

    def estimate_for(self, target: str) -> float | None:
        try:
            return self.estimated_cost_usd[self.chain.index(target)]
        except ValueError:
            return None

    def encode(self) -> str:
        return orjson.dumps(
            {
                "s": self.strategy,
                "r": self.reason,
                "c": self.chain,
                "e": self.estimated_cost_usd,
                "o": self.context,
                "a": self.arm,
                "k": self.cache_key,
                "p": self.prepared,
            }
        ).decode()


def decode_decision(value: str | None) -> CarriedDecision | None:
    if not value:
        return None
    try:
        data = orjson.loads(value)
        return CarriedDecision(
            str(data["s"]),
            str(data["r"]),
            tuple(data["c"]),
            tuple(data["e"]),
            data.get("o"),
            data.get("a"),
            data.get("k"),
            bool(data.get("p")),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
