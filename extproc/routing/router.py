"""The routing decision: price every target for this request, drop the ineligible, let the strategy rank."""

from __future__ import annotations

import time
from dataclasses import replace

from extproc.clusters.status import StatusBoard, TargetStatus
from extproc.config.model import STRATEGIES as STRATEGY_NAMES
from extproc.config.model import Config
from extproc.reliability.guards import RATE_LIMITED, TargetGuards
from extproc.routing.complexity import DEFAULT_THRESHOLDS, Thresholds, assess
from extproc.routing.decision import Candidate, Decision, StrategyInput
from extproc.routing.estimate import Estimate, estimate
from extproc.routing.model_groups import ModelGroup, model_groups, unknown_model
from extproc.routing.request import BadRequest, ChatRequest
from extproc.routing.strategies import STRATEGIES
from extproc.routing.targets import Target, build_targets


def tier_thresholds(complexity_threshold: float | None) -> Thresholds:
    """Tier cut points, with a calibrated `complexityThreshold` as the cut into the complex (premium) tiers."""
    if complexity_threshold is None:
        return DEFAULT_THRESHOLDS
    cut = min(max(complexity_threshold, 0.002), 0.998)
    return Thresholds(
        medium=min(DEFAULT_THRESHOLDS.medium, cut / 2),
        complex=cut,
        reasoning=max(DEFAULT_THRESHOLDS.reasoning, (cut + 1) / 2),
    )


class NoTarget(Exception):
    """No target can take the request; `status` says whose fault that is (400 the client's, 503 ours)."""

    def __init__(
        self, message: str, status: int, code: str, decision: Decision, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.message = message
        self.status = status
        self.code = code
        self.decision = decision


class Router:
    def __init__(self, config: Config, status: StatusBoard) -> None:
        self.config = config
        self.status = status
        self.targets: tuple[Target, ...] = build_targets(config)
        self.by_name = {t.name: t for t in self.targets}
        self.guards = TargetGuards(self.targets, config.router)
        self.model_groups = model_groups(config, self.targets)
        self.thresholds = tier_thresholds(config.router.complexity_threshold)

    def estimate(self, target: Target, input_tokens: int, output_tokens: int) -> Estimate:
        """Expected cost and latency on `target` now (clusters priced from their live throughput)."""
        return estimate(target, self.status[target.name], input_tokens, output_tokens)

    def live_price_per_1k(self, target: Target) -> float:
        """A cluster's $/1K from measured throughput (declared until measured); a provider's output price."""
        return self.estimate(target, 0, 0).output_per_1k

    def strategy_for(self, override: str | None) -> str:
        if override is None:
            return self.config.router.routing_strategy
        if override not in STRATEGY_NAMES:
            raise BadRequest(
                f"Invalid x-llm-router-strategy {override!r}: use one of {', '.join(STRATEGY_NAMES)}.",
                param="x-llm-router-strategy",
                code="invalid_strategy",
            )
        return override

    def model_group(self, model: str) -> ModelGroup:
        """What the requested model means (see `model_groups`); unknown models are a 404."""
        group = self.model_groups.get(model)
        if group is None:
            raise unknown_model(model)
        return group

    def decide(self, request: ChatRequest, strategy: str, allowed_models: frozenset[str] | None = None) -> Decision:
        """`allowed_models`: the client key may only be served by targets of these models (None: any)."""
        group = self.model_group(request.model)
        router = self.config.router
        output_tokens = request.max_tokens or router.default_max_tokens
        now = time.monotonic()
        candidates = [self._candidate(t, request, output_tokens, group, allowed_models, now) for t in self.targets]
        complexity = assess(request.body, self.thresholds)
        if group.min_tier is not None and group.min_tier > complexity.tier:
            complexity = replace(complexity, tier=group.min_tier)
        eligible = [c for c in candidates if c.skip is None]
        decision = Decision(strategy, [], "", "", complexity, request.input_tokens, output_tokens, candidates)
        if not eligible:
            raise self._no_target(candidates, decision)
        ranking = STRATEGIES[strategy](StrategyInput(eligible, complexity, router))
        if not ranking.order:
            raise NoTarget(f"Strategy {strategy} found no target: {ranking.detail}.", 503, "no_target", decision)
        decision.chain = ranking.order[: 1 + router.max_fallbacks]
        decision.reason, decision.detail = ranking.reason, ranking.detail
        return decision

    def _candidate(
        self,
        target: Target,
        request: ChatRequest,
        output_tokens: int,
        group: ModelGroup,
        allowed_models: frozenset[str] | None,
        now: float,
    ) -> Candidate:
        status = self.status[target.name]
        prices = estimate(target, status, request.input_tokens, output_tokens)
        skip = self._skip_reason(target, status, prices, request, output_tokens, now)
        if skip is None:
            if group.targets is not None and target.name not in group.targets:
                skip = f"does not serve model {request.model}"
            elif allowed_models is not None and target.model not in allowed_models:
                skip = "model not allowed for this API key"
        return Candidate(target, prices, skip)

    def _skip_reason(
        self,
        target: Target,
        status: TargetStatus,
        prices: Estimate,
        request: ChatRequest,
        output_tokens: int,
        now: float,
    ) -> str | None:
        if not status.healthy:
            return "unhealthy" if status.last_poll else "not ready"
        guarded = self.guards.skip_reason(target.name, request.input_tokens + output_tokens, now)
        if guarded:
            return guarded
        context = target.context_window  # or the server's own, when smaller (not min(): a call costs ~3x)
        if status.context_window and status.context_window < context:
            context = status.context_window
        needed = request.input_tokens + (request.max_tokens or 0)
        if needed > context:
            return f"context window {context} < {needed} tokens needed"
        if request.max_tokens and request.max_tokens > target.max_output:
            return f"max_tokens {request.max_tokens} > model's max output {target.max_output}"
        if target.is_cluster:
            return self._cluster_admission(target, status, prices)
        return None

    def _cluster_admission(self, target: Target, status: TargetStatus, prices: Estimate) -> str | None:
        assert target.cluster is not None
        router = self.config.router
        limit = target.cluster.max_queue_depth if target.cluster.max_queue_depth is not None else router.max_queue_depth
        waiting = status.waiting
        if waiting > limit:
            return f"queue depth {waiting} > max {limit}"
        if prices.latency_ms > router.max_latency_ms:
            return f"expected latency {prices.latency_ms:.0f} ms > max {router.max_latency_ms:.0f} ms"
        return None

    def _no_target(self, candidates: list[Candidate], decision: Decision) -> NoTarget:
        if candidates and all(c.skip and "tokens needed" in c.skip for c in candidates):
            largest = max((c.target.context_window for c in candidates), default=0)
            return NoTarget(
                f"This request needs {decision.input_tokens} input tokens plus max_tokens, more than the largest "
                f"context window available ({largest} tokens). Shorten the messages or lower max_tokens.",
                400,
                "context_length_exceeded",
                decision,
            )
        limited = [c.target.name for c in candidates if c.skip == RATE_LIMITED]
        if limited:
            wait = self.guards.retry_after(limited)
            return NoTarget(
                f"Every target that could serve this request is at its rate limit; retry in {wait:.0f} s.",
                429,
                "rate_limit_exceeded",
                decision,
                retry_after=max(int(wait + 0.999), 1),
            )
        reasons = "; ".join(f"{c.target.name}: {c.skip}" for c in candidates)
        return NoTarget(
            f"No target is available for this request ({reasons or 'none configured'}).",
            503,
            "no_target_available",
            decision,
        )
