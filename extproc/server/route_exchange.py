"""The router's half of a request (Envoy's downstream ext_proc): parse the body once, decide, pick the route.

Two messages: request headers (noted; answering them keeps the route open) and the buffered body. The reply
sets the cluster header to the decision's chain (a target cluster, or an aggregate cluster whose priorities
are the fallbacks), clears the route cache, strips the client's credentials, and hands the decision to the
per-attempt half as Envoy dynamic metadata (with the values of the router's response headers).

A request whose first target speaks OpenAI's format, so that its response needs no change on its way back
(Envoy removes a stream's usage event the client did not ask for), is prepared here for that target (body,
path, credentials) and marked so that Envoy skips the upstream attempt exchange on the first try: see
`extproc.server.prepared`. Otherwise the body is left untouched and every
attempt translates it afresh.
"""

from __future__ import annotations

from dataclasses import replace

from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from extproc.auth.grant import grant_of, model_refusal
from extproc.envoy_config.names import CHAT_COMPLETIONS_PATH, REMOVE_USAGE_EVENT
from extproc.headers import (
    CACHE_HEADER,
    CLIENT_CREDENTIAL_HEADERS,
    CLUSTER_HEADER,
    PREPARED_HEADER,
    REQUEST_ID_HEADER,
    STRATEGY_HEADER,
)
from extproc.providers.errors import TranslationError, openai_error
from extproc.routing.chains import chain_cluster_name
from extproc.routing.decision import Decision
from extproc.routing.request import BadRequest, ChatRequest, parse_chat_request
from extproc.routing.router import NoTarget
from extproc.routing.targets import Target
from extproc.server import envoy_messages as msg
from extproc.server.attempt_exchange import AttemptExchange, stale_headers
from extproc.server.carried_decision import CarriedDecision
from extproc.server.runtime import Runtime

_REMOVE_BEFORE_UPSTREAM = (*CLIENT_CREDENTIAL_HEADERS, STRATEGY_HEADER, PREPARED_HEADER)
OPENAI_API = "openai"


class RouteExchange:
    __slots__ = ("finished", "runtime", "seen", "strategy_override")

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.finished = False
        self.strategy_override: str | None = None
        self.seen = runtime.observer.request()

    def handle(self, message: ep.ProcessingRequest) -> ep.ProcessingResponse:
        phase = message.WhichOneof("request")
        if phase == "request_headers":
            return self._on_headers(message.request_headers)
        if phase == "request_body":
            self.finished = True
            grant = grant_of(message)
            self.seen.tenant = grant.tenant
            return self._on_body(message.request_body, grant.allowed_models)
        self.finished = True
        return ep.ProcessingResponse()

    def close(self) -> None:
        """Nothing is held between messages."""

    def _on_headers(self, headers: ep.HttpHeaders) -> ep.ProcessingResponse:
        values = msg.header_map(headers)
        self.seen.headers = values
        if values.get(":method", "POST") != "POST":
            return self._reject(
                405,
                "Only POST is supported on this endpoint.",
                "method_not_allowed",
                extra_headers=(("allow", "POST"),),
            )
        if headers.end_of_stream:
            return self._reject(400, "The request has no body: send a JSON chat-completions request.", "missing_body")
        self.strategy_override = values.get(STRATEGY_HEADER)
        return msg.EMPTY_REQUEST_HEADERS_REPLY

    def _on_body(self, body: ep.HttpBody, allowed_models: frozenset[str] | None) -> ep.ProcessingResponse:
        """`allowed_models`: the client key's (from ext_authz's metadata), None for any."""
        router = self.runtime.router
        try:
            request = parse_chat_request(body.body)
            if allowed_models is not None:
                refusal = model_refusal(request.model, allowed_models, (t.model for t in router.targets))
                if refusal:
                    return self._reject(403, refusal, "model_not_allowed")
            cache_key = self.runtime.cache.key(self.seen.tenant or "", request.body)
            cached = self.runtime.cache.get(cache_key) if cache_key else None
            if cache_key:
                self.runtime.metrics.cache.labels("hit" if cached else "miss").inc()
            if cached is not None:
                return self._answer_from_cache(cached)
            strategy, arm = self._strategy()
            decision = router.decide(request, strategy, allowed_models)
            decision.arm = arm
        except BadRequest as error:
            return self._reject(error.status, error.message, error.code, param=error.param)
        except NoTarget as error:
            retry = (("retry-after", str(error.retry_after)),) if error.retry_after else ()
            return self._reject(error.status, error.message, error.code, extra_headers=retry, decision=error.decision)
        primary = decision.primary.target
        self.runtime.metrics.routing_decisions.labels(primary.name, primary.kind.value, decision.reason).inc()
        if decision.arm is not None and self.runtime.split is not None:
            experiment = self.runtime.split.experiment.name
            self.runtime.metrics.experiment_requests.labels(experiment, decision.arm, primary.name).inc()
        preparing = self.runtime.config.prepares_first_attempts and not cache_key and self._preparable(request, primary)
        context = self.runtime.observer.decided(self.seen, decision)
        carried = CarriedDecision.of(decision, context, cache_key, prepared=preparing)
        present = self.seen.headers
        set_headers = [(CLUSTER_HEADER, chain_cluster_name(carried.chain))]
        remove: tuple[str, ...] = _REMOVE_BEFORE_UPSTREAM
        body: bytes | None = None
        prepared = self._prepare(request, primary, carried) if preparing else None
        if prepared is not None:
            upstream_headers, body = prepared
            remove = (*stale_headers(upstream_headers), STRATEGY_HEADER)
            set_headers += [*msg.changes(upstream_headers, present), (PREPARED_HEADER, "1")]
        elif preparing:
            carried = replace(carried, prepared=False)  # the target refused it: every attempt translates afresh
        metadata: dict[str, str | bool] = {
            "decision": carried.encode(),
            "prepared": carried.prepared,
            "reason": decision.reason,
            "estimate": f"{decision.primary.cost_usd:.8f}",
        }
        if decision.arm is not None:
            metadata["arm"] = decision.arm
        if carried.prepared and request.stream and not request.include_usage:
            metadata[REMOVE_USAGE_EVENT] = True  # Envoy's Lua filter takes out the event the router asked for
        reply = msg.request_body_reply(set_headers, msg.removals(remove, present), body)
        reply.request_body.response.clear_route_cache = True
        msg.fill_decision_metadata(reply.dynamic_metadata, metadata)
        return reply

    def _preparable(self, request: ChatRequest, target: Target) -> bool:
        """Whether the first attempt can be rewritten here: its target speaks OpenAI's format, so the response
        goes to the client as it comes (but for a stream's usage event, which Envoy removes when the client did
        not ask for it)."""
        return target.api == OPENAI_API and bool(self.seen.headers.get(REQUEST_ID_HEADER))

    def _prepare(
        self, request: ChatRequest, target: Target, carried: CarriedDecision
    ) -> tuple[list[tuple[str, str]], bytes] | None:
        """The first attempt rewritten here for `target`: the headers to set and the body (None if refused)."""
        request_id = self.seen.headers[REQUEST_ID_HEADER]
        attempt = AttemptExchange.first(self.runtime, target, carried, request_id, self.seen.tenant, request)
        try:
            upstream = attempt.translate()
        except TranslationError:
            return None  # the attempt exchange answers with the reason
        if upstream.path != CHAT_COMPLETIONS_PATH:
            return None  # the route matches this path only
        headers = attempt.send(upstream)
        self.runtime.prepared.add(request_id, attempt)
        return headers, upstream.body

    def _strategy(self) -> tuple[str, str | None]:
        """The strategy for this request and the A/B arm that chose it (the override header wins)."""
        split = self.runtime.split
        if self.strategy_override is not None or split is None:
            return self.runtime.router.strategy_for(self.strategy_override), None
        sticky = split.experiment.sticky_header
        key = self.seen.headers.get(sticky) if sticky else self.seen.tenant
        arm = split.arm_for(key)
        return arm.strategy, arm.name

    def _answer_from_cache(self, body: bytes) -> ep.ProcessingResponse:
        self.finished = True
        return msg.immediate(200, body, ((CACHE_HEADER, "hit"),), details="llm_router_cache_hit")

    def _reject(
        self,
        status: int,
        message: str,
        code: str | None,
        *,
        param: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
        decision: Decision | None = None,
    ) -> ep.ProcessingResponse:
        self.finished = True
        self.runtime.metrics.bad_requests.labels(str(status), code or "").inc()
        self.runtime.observer.rejected(self.seen, status, code, decision)
        return msg.immediate(
            status,
            openai_error(status, message, code=code, param=param),
            extra_headers,
            details=f"llm_router_{code or status}",
        )
