"""The decision log's records: one JSON object per request, built from the decision and the final attempt.

The decision is made in the router's ext_proc stream and the outcome is seen in an attempt's stream, possibly
on another controller replica, so everything the record needs from the decision travels with the carried
decision (`context`): when it was made, the complexity tier and every candidate in compact form.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from extproc.routing.decision import TIER_NAMES, Decision
from extproc.server.failures import unseen_failure

Row = list[Any]  # [target, estimated cost USD, estimated latency ms, skip reason or None]


def carried_context(decision: Decision, started: float) -> dict[str, Any]:
    """What the attempts need from the decision to write its record (kept small: it rides every attempt)."""
    return {"at": round(started, 3), "x": TIER_NAMES[decision.complexity.tier], "k": candidate_rows(decision)}


def candidate_rows(decision: Decision) -> list[Row]:
    return [[c.target.name, round(c.cost_usd, 10), round(c.latency_ms, 1), c.skip] for c in decision.candidates]


def candidates_view(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [
        {"target": name, "estimated_cost_usd": cost, "estimated_latency_ms": latency, "skip": skip}
        for name, cost, latency, skip in rows
    ]


def iso_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def rejection_record(
    request_id: str, tenant: str, started: float, status: int, code: str | None, decision: Decision | None
) -> dict[str, Any]:
    """A request the router answered itself (bad input, no target): no attempt, no cost."""
    return {
        "time": iso_time(started),
        "request_id": request_id,
        "tenant": tenant,
        "strategy": decision.strategy if decision else None,
        "reason": code,
        "complexity": TIER_NAMES[decision.complexity.tier] if decision else None,
        "candidates": candidates_view(candidate_rows(decision)) if decision else [],
        "chain": [],
        "target": None,
        "fallbacks": [],
        "attempts": 0,
        "status": status,
        "outcome": "rejected",
        "stream": None,
        "tokens": None,
        "estimated_cost_usd": None,
        "cost_usd": None,
        "baseline_cost_usd": None,
        "duration_ms": round((time.time() - started) * 1000, 1),
    }


def fallbacks(
    chain: Sequence[str], seen: dict[int, tuple[str, int]], attempt: int, target: str, first_prepared: bool = False
) -> list[dict]:
    """Every hop from one target to the next up to `attempt`; `seen` maps earlier attempt numbers seen here
    to (target, status). Envoy walks the chain in order, so an unseen attempt went to its chain position and
    failed to connect (an attempt without a connection never reaches the controller), or was the first
    attempt the router prepared itself (`first_prepared`)."""

    def target_of(number: int) -> str:
        if number == attempt:
            return target
        if number in seen:
            return seen[number][0]
        return chain[min(number, len(chain)) - 1] if chain else ""

    hops = []
    for number in range(2, attempt + 1):
        previous = seen.get(number - 1)
        reason = f"status_{previous[1]}" if previous and previous[1] else unseen_failure(number - 1, first_prepared)
        hops.append({"from": target_of(number - 1), "to": target_of(number), "reason": reason})
    return hops
