"""One attempt of a request at one target (Envoy's upstream ext_proc, run once per try, retries included).

Request headers (which target this attempt reached, from the upstream host's metadata) -> request body
(translated afresh from the client's original for this target, credentials injected) -> response headers
(router headers, how to read the body) -> response body (translated back to OpenAI's shape, usage accounted).
"""

from __future__ import annotations

import re
import time

from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from extproc.auth.config import ANONYMOUS
from extproc.auth.grant import grant_of
from extproc.envoy_config.names import METADATA_NAMESPACE
from extproc.headers import (
    ARM_HEADER,
    ATTEMPT_HEADER,
    COST_HEADER,
    ESTIMATED_COST_HEADER,
    REASON_HEADER,
    REQUEST_ID_HEADER,
    TARGET_HEADER,
    TARGET_SPECIFIC_HEADERS,
)
from extproc.observability.observer import AttemptSeen
from extproc.providers.base import StreamTranslator, Translator, UpstreamRequest, Usage
from extproc.providers.errors import TranslationError, openai_error
from extproc.providers.registry import translator_for
from extproc.routing.request import BadRequest, ChatRequest, parse_chat_request
from extproc.routing.targets import Target
from extproc.security.signing import cluster_signature_headers
from extproc.server import envoy_messages as msg
from extproc.server.carried_decision import CarriedDecision, decode_decision
from extproc.server.failures import UNSEEN_FAILURES
from extproc.server.runtime import Runtime

HOST_METADATA_ATTRIBUTE = "xds.upstream_host_metadata"
_TARGET_IN_METADATA = re.compile(
    rf'key: "{METADATA_NAMESPACE}" value \{{ fields \{{ key: "target" value \{{ string_value: "([^"]+)"'
)


class AttemptExchange:
    __slots__ = (
        "_stream",
        "_translator",
        "attempt",
        "closed",
        "cost_usd",
        "counted",
        "decision",
        "finished",
        "observed",
        "request",
        "request_headers",
        "request_id",
        "runtime",
        "sent",
        "started",
        "status",
        "target",
        "tenant",
        "usage",
    )

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.started = time.monotonic()
        self.finished = False
        self.closed = False
        self.sent = False  # the attempt went to its target
        self.counted = False  # ...and this controller counts it as in flight there
        self.target: Target | None = None
        self.decision: CarriedDecision | None = None
        self.request: ChatRequest | None = None
        self.request_headers: dict[str, str] = {}  # as this attempt's exchange received them
        self.attempt = 1
        self.request_id = ""
        self.status = 0
        self.usage: Usage | None = None
        self.tenant = ANONYMOUS  # whose budget the attempt's cost is charged to
        self.cost_usd: float | None = None  # actual, once the usage is known
        self.observed: AttemptSeen | None = None  # the decision log's and tracing's view of this attempt
        self._translator: Translator | None = None
        self._stream: StreamTranslator | None = None

    @classmethod
    def first(
        cls,
        runtime: Runtime,
        target: Target,
        decision: CarriedDecision,
        request_id: str,
        tenant: str,
        request: ChatRequest | None = None,
    ) -> AttemptExchange:
        """A request's first attempt, known without an upstream exchange: prepared by the router's ext_proc
        (with the parsed `request`), or known only from Envoy's access log."""
        attempt = cls(runtime)
        attempt.target, attempt.decision, attempt.request_id, attempt.tenant = target, decision, request_id, tenant
        attempt.request = request
        attempt.sent = True
        return attempt

    def handle(self, message: ep.ProcessingRequest) -> ep.ProcessingResponse:
        phase = message.WhichOneof("request")
        if phase == "request_headers":
            return self._on_request_headers(message)
        if phase == "request_body":
            return self._on_request_body(message.request_body)
        if phase == "response_headers":
            return self._on_response_headers(message.response_headers)
        if phase == "response_body":
            return self._on_response_body(message.response_body)
        self.finished = True
        return ep.ProcessingResponse()

    # -- request ---------------------------------------------------------------------------------------

    def _on_request_headers(self, message: ep.ProcessingRequest) -> ep.ProcessingResponse:
        self.request_headers = headers = msg.header_map(message.request_headers)
        self.decision = decode_decision(msg.decision_from_metadata(message))
        self.tenant = grant_of(message).tenant
        self.attempt = int(headers.get(ATTEMPT_HEADER, "1") or 1)
        self.request_id = headers.get(REQUEST_ID_HEADER, "")
        name = _attempt_target(message)
        self.target = self.runtime.router.by_name.get(name) if name else None
        if self.target is None:
            return self._fail(500, f"The router could not tell which target this attempt reached ({name!r}).")
        return msg.EMPTY_REQUEST_HEADERS_REPLY

    def _on_request_body(self, body: ep.HttpBody) -> ep.ProcessingResponse:
        assert self.target is not None
        try:
            self.request = parse_chat_request(body.body)
        except BadRequest as error:
            return self._fail(error.status, error.message)
        self._note_fallback()
        try:
            upstream = self.translate()
        except TranslationError as error:
            return self._fail(400, f"{self.target.name} cannot serve this request: {error}")
        set_headers = self.send(upstream)
        present = self.request_headers
        remove = msg.removals(stale_headers(set_headers), present)
        return msg.request_body_reply(msg.changes(set_headers, present), remove, upstream.body)

    def translate(self) -> UpstreamRequest:
        """The request in the target's format (raises TranslationError when the target cannot serve it)."""
        assert self.target is not None and self.request is not None
        self._translator = translator_for(self.target.api)
        return self._translator.build_request(self.request.body, self.target.endpoint)

    def send(self, upstream: UpstreamRequest) -> list[tuple[str, str]]:
        """The attempt leaves for its target: count it there; the headers that carry it (path, host, auth)."""
        assert self.target is not None
        target = self.target
        self.runtime.status[target.name].in_flight += 1
        self.sent = self.counted = True
        self.runtime.router.guards.on_send(target.name, self.expected_tokens())
        self.observed = self.runtime.observer.attempt_sent(self)
        return [
            (":path", upstream.path),
            (":authority", target.url.host),
            ("content-length", str(len(upstream.body))),
            *upstream.headers,
            *cluster_signature_headers(target.cluster, "POST", upstream.path, upstream.body),
            *self.observed.upstream_headers,
        ]

    def _note_fallback(self) -> None:
        if self.attempt < 2 or self.decision is None:
            return
        for source, destination, reason in self.runtime.attempts.hops(
            self.request_id, self.attempt, self.decision.chain, self.decision.prepared
        ):
            self.runtime.metrics.fallbacks.labels(source, destination, reason).inc()
            if reason in UNSEEN_FAILURES:
                self.runtime.router.guards.on_outcome(source, None)

    def expected_tokens(self) -> int | None:
        """Tokens reserved at the target's rate limit when the attempt left (None: not sent from here)."""
        if self.request is None:
            return None
        router = self.runtime.config.router
        return self.request.input_tokens + (self.request.max_tokens or router.default_max_tokens)

    def _fail(self, status: int, message: str) -> ep.ProcessingResponse:
        self.finished = True
        self.status = status
        self.runtime.observer.attempt_finished(self)
        return msg.immediate(status, openai_error(status, message), details="llm_router_attempt_failed")

    # -- response --------------------------------------------------------------------------------------

    def _on_response_headers(self, headers: ep.HttpHeaders) -> ep.ProcessingResponse:
        assert self.target is not None and self.request is not None and self._translator is not None
        values = msg.header_map(headers)
        self._note_status(int(values.get(":status", "0") or 0))
        router_headers = self._router_headers()
        if headers.end_of_stream:
            self._finish()
            return ep.ProcessingResponse(
                response_headers=ep.HeadersResponse(
                    response=ep.CommonResponse(header_mutation=msg.mutation(router_headers))
                )
            )
        streaming = self.status == 200 and values.get("content-type", "").startswith("text/event-stream")
        if streaming:
            self._stream = self._translator.stream_translator(self.target.model, self.request.include_usage)
        mode = ProcessingMode(response_body_mode=msg.STREAMED if streaming else msg.BUFFERED)
        return ep.ProcessingResponse(
            response_headers=ep.HeadersResponse(
                response=ep.CommonResponse(
                    header_mutation=msg.mutation(router_headers, ["content-length"] if streaming else [])
                )
            ),
            mode_override=mode,
        )

    def _note_status(self, status: int) -> None:
        """A response status, remembered for the hop to the next attempt should Envoy retry."""
        self._count_status(status)
        self.runtime.attempts.response(self.request_id, self.attempt, status)

    def _count_status(self, status: int) -> None:
        assert self.target is not None
        self.status = status
        self.runtime.metrics.requests.labels(self.target.name, str(status)).inc()
        self.runtime.router.guards.on_outcome(self.target.name, status)

    def _router_headers(self) -> list[tuple[str, str]]:
        assert self.target is not None
        headers = [(TARGET_HEADER, self.target.name)]
        if self.decision is not None:
            headers.append((REASON_HEADER, self.decision.reason if self.attempt == 1 else "fallback"))
            estimate = self.decision.estimate_for(self.target.name)
            if estimate is not None:
                headers.append((ESTIMATED_COST_HEADER, f"{estimate:.8f}"))
            if self.decision.arm is not None:
                headers.append((ARM_HEADER, self.decision.arm))
        return headers

    def _on_response_body(self, body: ep.HttpBody) -> ep.ProcessingResponse:
        if self._stream is not None:
            return self._on_stream_chunk(body)
        assert self._translator is not None and self.target is not None
        translated = self._translator.translate_response(self.status, body.body, self.target.model)
        self.usage = translated.usage
        if translated.status == 200 and self.decision is not None and self.decision.cache_key:
            self.runtime.cache.put(self.decision.cache_key, translated.body)
        self._finish()
        set_headers = [("content-length", str(len(translated.body)))]
        if translated.status != self.status:
            set_headers.append((":status", str(translated.status)))
        if translated.retry_after:
            set_headers.append(("retry-after", translated.retry_after))
        if self.cost_usd is not None:
            set_headers.append((COST_HEADER, f"{self.cost_usd:.8f}"))
        return ep.ProcessingResponse(
            response_body=ep.BodyResponse(
                response=ep.CommonResponse(
                    header_mutation=msg.mutation(set_headers),
                    body_mutation=ep.BodyMutation(body=translated.body),
                )
            )
        )

    def _on_stream_chunk(self, body: ep.HttpBody) -> ep.ProcessingResponse:
        assert self._stream is not None
        out = self._stream.feed(body.body)
        if body.end_of_stream:
            out += self._stream.finish()
            self.usage = self._stream.usage
            self._finish()
        if out == body.body:
            return msg.EMPTY_RESPONSE_BODY_REPLY
        return ep.ProcessingResponse(
            response_body=ep.BodyResponse(response=ep.CommonResponse(body_mutation=ep.BodyMutation(body=out)))
        )

    def _finish(self) -> None:
        self.finished = True
        self.close()

    # -- a first attempt the router's ext_proc prepared (no upstream exchange): its outcome comes logged --

    def logged(self, status: int, usage: Usage | None) -> None:
        """Envoy's access log says how the attempt ended (status 0: no response reached the client). The
        request is over: no later attempt needs its status."""
        if status:
            self._count_status(status)
        self.usage = usage
        self.finished = bool(status)
        self.close()

    def superseded(self) -> None:
        """Envoy retried the request elsewhere: the next attempt's exchange accounts for this hop."""
        self._release()

    def close(self) -> None:
        """Account for the attempt once, however it ended (completed, or cancelled by Envoy)."""
        if not self._release():
            return
        self.cost_usd = self.runtime.accounting.record(self)
        self.runtime.observer.attempt_finished(self)

    def _release(self) -> bool:
        """Stop counting the attempt as in flight at its target; False if it never went or was released."""
        if not self.sent or self.target is None or self.closed:
            return False
        self.closed = True
        if self.counted:
            self.runtime.status[self.target.name].in_flight -= 1
        return True


def stale_headers(setting: list[tuple[str, str]]) -> list[str]:
    """Target-specific headers an earlier attempt (or the client) may have left and this one does not set."""
    names = {name for name, _ in setting}
    return [h for h in TARGET_SPECIFIC_HEADERS if h not in names]


def _attempt_target(message: ep.ProcessingRequest) -> str | None:
    """The target name in the upstream host's metadata, which Envoy sends as a request attribute.

    Envoy 1.40 renders that metadata as protobuf text (`filter_metadata { key: "llm_router" value {...} }`).
    """
    for attributes in message.attributes.values():
        host = attributes.fields.get(HOST_METADATA_ATTRIBUTE)
        if host is None:
            continue
        found = _TARGET_IN_METADATA.search(host.string_value)
        if found:
            return found.group(1)
    return None
