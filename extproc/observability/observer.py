"""The observability side of every request: the hooks the two ext_proc exchanges call.

Route exchange: `request` (headers seen) -> `decided` (returns the context the decision carries to every
attempt) or `rejected`. Attempt exchange: `attempt_sent` (starts the attempt's span, gives the upstream its
`traceparent`) -> `attempt_finished` (estimate error, baseline cost, the decision log record).
With tracing off and no baseline, a request costs a few dictionary operations and one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from extproc.auth.config import ANONYMOUS
from extproc.config.model import Config
from extproc.metrics import Metrics
from extproc.observability import records
from extproc.observability.cost import CostReport
from extproc.observability.decision_log import DecisionLog
from extproc.observability.journal import Held, Journal
from extproc.observability.tracing import Attributes, start_tracing
from extproc.reliability.guards import is_target_failure
from extproc.routing.decision import TIER_NAMES, Decision
from extproc.routing.targets import Target

if TYPE_CHECKING:
    from extproc.server.attempt_exchange import AttemptExchange

RETRY_GRACE_SECONDS = 1.0  # how long after a retriable failure the next attempt is expected (plus connects)
TRACER_SHUTDOWN_SECONDS = 5.0
RETIRE_SECONDS = 300.0  # after a reload, when the old outputs close if requests have no timeout


@dataclass(slots=True)
class RequestSeen:
    started_ns: int  # wall clock: records and spans of one request may come from several replicas
    headers: Mapping[str, str] = field(default_factory=dict)
    tenant: str = ANONYMOUS

    @property
    def started(self) -> float:
        return self.started_ns / 1e9


@dataclass(slots=True)
class AttemptSeen:
    number: int
    seen: dict[int, tuple[str, int]]  # earlier attempts of the request seen here: number -> (target, status)
    upstream_headers: list[tuple[str, str]] = field(default_factory=list)
    span: Any = None


class Observer:
    """Built per runtime; after a reload the outputs (log, webhooks, tracer, held attempts) carry over when
    the `observability` section did not change, else the old ones are retired once requests in flight are done.
    """

    def __init__(self, config: Config, metrics: Metrics, targets: tuple[Target, ...], previous: Observer | None = None):
        self.settings = config.observability
        self.max_attempts = config.router.max_fallbacks + 1
        self.costs = CostReport(config, metrics)
        connect = max((t.limits.connect_timeout for t in targets), default=0.0)
        grace = RETRY_GRACE_SECONDS + connect * config.router.max_fallbacks
        if previous is not None and previous.settings == self.settings:
            self.log, self.tracer, self.journal = previous.log, previous.tracer, previous.journal
            self.journal.grace = grace
            self._active = previous._active
            return
        self.log = DecisionLog(self.settings, metrics)
        self.tracer = start_tracing(self.settings.tracing)
        self.journal = Journal(self.log.emit, grace)
        self._active: dict[str, AttemptSeen] = {}  # request id -> its attempt under way here
        if previous is not None:
            previous.retire(config.server.request_timeout or RETIRE_SECONDS)

    async def stop(self) -> None:
        """Write what is held, deliver what is queued, export the last spans."""
        self.journal.flush()
        await self.log.stop()
        if self.tracer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(self.tracer.shutdown), TRACER_SHUTDOWN_SECONDS)

    def retire(self, after: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: nothing was started
            return
        loop.call_later(after, _in_background, self.stop)

    # -- the route exchange ----------------------------------------------------------------------------

    def request(self) -> RequestSeen:
        """A request starts: the route exchange fills in its headers and tenant as it learns them."""
        return RequestSeen(time.time_ns())

    def decided(self, seen: RequestSeen, decision: Decision) -> dict[str, Any]:
        """The context every attempt of this request receives with the carried decision."""
        context = records.carried_context(decision, seen.started)
        if self.tracer is not None:
            context["tp"] = self.tracer.route(seen.headers, seen.started_ns, _decision_attributes(seen, decision), None)
        return context

    def rejected(self, seen: RequestSeen, status: int, code: str | None, decision: Decision | None = None) -> None:
        request_id = seen.headers.get("x-request-id", "")
        if self.tracer is not None:
            attributes = _decision_attributes(seen, decision) if decision else {"llm_router.request_id": request_id}
            self.tracer.route(seen.headers, seen.started_ns, attributes, f"{status} {code or ''}".strip())
        self.log.emit(records.rejection_record(request_id, seen.tenant, seen.started, status, code, decision))

    # -- the attempt exchange --------------------------------------------------------------------------

    def attempt_sent(self, attempt: AttemptExchange) -> AttemptSeen:
        held = self.journal.take(attempt.request_id)
        observed = AttemptSeen(attempt.attempt, held.seen if held else {})
        self._active[attempt.request_id] = observed
        if self.tracer is not None and attempt.target is not None:
            context = attempt.decision.context if attempt.decision else None
            parent = context.get("tp") if context else None
            observed.span, traceparent = self.tracer.start_attempt(parent, _attempt_attributes(attempt, attempt.target))
            if traceparent:
                observed.upstream_headers.append(("traceparent", traceparent))
        return observed

    def attempt_finished(self, attempt: AttemptExchange) -> None:
        target = attempt.target
        carried = attempt.decision
        estimated = carried.estimate_for(target.name) if carried and target else None
        baseline = None
        if target is not None and attempt.usage is not None and attempt.cost_usd is not None:
            baseline = self.costs.record(target.name, attempt.usage, attempt.cost_usd, estimated)
        observed = attempt.observed
        if observed is not None and self._active.get(attempt.request_id) is observed:
            del self._active[attempt.request_id]
        outcome = _outcome(attempt)
        if self.tracer is not None and observed is not None and observed.span is not None:
            error = None if outcome == "completed" else f"{outcome} {attempt.status or ''}".strip()
            self.tracer.end_attempt(observed.span, _result_attributes(attempt, baseline), error)
        seen = dict(observed.seen) if observed else {}
        record = _outcome_record(attempt, outcome, seen, estimated, baseline)
        seen[attempt.attempt] = (target.name if target else "", attempt.status)
        later = self._active.get(attempt.request_id)
        if later is not None and later.number > attempt.attempt:
            later.seen.update(seen)  # the retry is already under way here: its record tells the whole story
        elif self._may_be_retried(attempt):
            self.journal.hold(attempt.request_id, Held(record, seen))
        else:
            self.log.emit(record)

    def _may_be_retried(self, attempt: AttemptExchange) -> bool:
        """Whether Envoy may send this request on to the next target (see the route's retry policy)."""
        status = attempt.status
        retriable = (status == 0 and not attempt.finished) or is_target_failure(status)
        return attempt.sent and retriable and attempt.attempt < self.max_attempts


_BACKGROUND: set[asyncio.Task[None]] = set()


def _in_background(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    task = asyncio.get_running_loop().create_task(work())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


def _outcome(attempt: AttemptExchange) -> str:
    if not attempt.finished:
        return "cancelled"  # Envoy ended the attempt first: the client left, a reset, a timeout
    return "completed" if 0 < attempt.status < 400 else "error"


def _outcome_record(
    attempt: AttemptExchange,
    outcome: str,
    seen: dict[int, tuple[str, int]],
    estimated: float | None,
    baseline: float | None,
) -> dict[str, Any]:
    carried = attempt.decision
    context = (carried.context if carried else None) or {}
    target = attempt.target.name if attempt.target else None
    chain = list(carried.chain) if carried else []
    started = context.get("at")
    now = time.time()
    duration = now - started if started else time.monotonic() - attempt.started
    usage = attempt.usage
    return {
        "time": records.iso_time(started or now - duration),
        "request_id": attempt.request_id,
        "tenant": attempt.tenant,
        "strategy": carried.strategy if carried else None,
        "reason": carried.reason if carried else None,
        "complexity": context.get("x"),
        "candidates": records.candidates_view(context.get("k", ())),
        "chain": chain,
        "target": target,
        "fallbacks": records.fallbacks(chain, seen, attempt.attempt, target or "", bool(carried and carried.prepared)),
        "attempts": attempt.attempt,
        "status": attempt.status or None,
        "outcome": outcome,
        "stream": attempt.request.stream if attempt.request else None,
        "tokens": {"input": usage.prompt_tokens, "output": usage.completion_tokens} if usage else None,
        "estimated_cost_usd": estimated,
        "cost_usd": attempt.cost_usd,
        "baseline_cost_usd": baseline,
        "duration_ms": round(duration * 1000, 1),
    }


def _decision_attributes(seen: RequestSeen, decision: Decision) -> Attributes:
    attributes: dict[str, Any] = {
        "llm_router.request_id": seen.headers.get("x-request-id", ""),
        "llm_router.tenant": seen.tenant,
        "llm_router.strategy": decision.strategy,
        "llm_router.complexity": TIER_NAMES[decision.complexity.tier],
        "llm_router.input_tokens": decision.input_tokens,
        "llm_router.skipped": [f"{c.target.name}: {c.skip}" for c in decision.candidates if c.skip],
    }
    if decision.chain:
        attributes.update(
            {
                "llm_router.reason": decision.reason,
                "llm_router.chain": [c.target.name for c in decision.chain],
                "llm_router.target": decision.primary.target.name,
                "llm_router.estimated_cost_usd": decision.primary.cost_usd,
            }
        )
    return attributes


def _attempt_attributes(attempt: AttemptExchange, target: Target) -> Attributes:
    return {
        "llm_router.request_id": attempt.request_id,
        "llm_router.target": target.name,
        "llm_router.attempt": attempt.attempt,
        "gen_ai.system": target.family,
        "gen_ai.request.model": target.model,
        "server.address": target.url.host,
        "server.port": target.url.port,
    }


def _result_attributes(attempt: AttemptExchange, baseline: float | None) -> Attributes:
    attributes: dict[str, Any] = {"http.response.status_code": attempt.status}
    if attempt.usage is not None:
        attributes["gen_ai.usage.input_tokens"] = attempt.usage.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = attempt.usage.completion_tokens
    if attempt.cost_usd is not None:
        attributes["llm_router.cost_usd"] = attempt.cost_usd
    if baseline is not None:
        attributes["llm_router.baseline_cost_usd"] = baseline
    return attributes
