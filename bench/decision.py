"""In-process timing of the controller's per-request work on a body: parse, decide, rewrite for the target.

Uses the product's own functions on the benchmark config, with every cluster marked healthy as the poller
would. No Envoy, no gRPC: this is the pure routing cost a body of that size puts on the controller.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from extproc.clusters.status import StatusBoard
from extproc.config.loader import parse_config
from extproc.providers.registry import translator_for
from extproc.routing.request import parse_chat_request
from extproc.routing.router import Router


@dataclass(frozen=True, slots=True)
class DecisionTiming:
    body_bytes: int
    repeats: int
    target: str
    reason: str
    input_tokens: int
    parse_ms: float  # medians
    decide_ms: float
    rewrite_ms: float  # the translator's upstream body (what the body reply carries back to Envoy)
    parse_decide_max_ms: float

    @property
    def parse_decide_ms(self) -> float:
        return self.parse_ms + self.decide_ms


def build_router(document: dict[str, Any]) -> Router:
    config = parse_config(document, env={})
    board = StatusBoard([c.name for c in config.clusters], [p.name for p in config.enabled_providers])
    for cluster in config.clusters:
        board[cluster.name].mark_polled(True)
    return Router(config, board)


def time_decision(document: dict[str, Any], body: bytes, repeats: int) -> DecisionTiming:
    router = build_router(document)
    parse, decide, rewrite, both = [], [], [], []
    decision = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        request = parse_chat_request(body)
        t1 = time.perf_counter()
        decision = router.decide(request, router.strategy_for(None))
        t2 = time.perf_counter()
        target = decision.primary.target
        translator_for(target.api).build_request(request.body, target.endpoint)
        t3 = time.perf_counter()
        parse.append(t1 - t0)
        decide.append(t2 - t1)
        rewrite.append(t3 - t2)
        both.append(t2 - t0)
    assert decision is not None
    return DecisionTiming(
        body_bytes=len(body),
        repeats=repeats,
        target=decision.primary.target.name,
        reason=decision.reason,
        input_tokens=decision.input_tokens,
        parse_ms=statistics.median(parse) * 1000,
        decide_ms=statistics.median(decide) * 1000,
        rewrite_ms=statistics.median(rewrite) * 1000,
        parse_decide_max_ms=max(both) * 1000,
    )
