"""One client request's conversation with Envoy's ext_proc filter, phase by phase.

Request headers (noted) -> request body (parse, decide, rewrite for the target) -> response headers
(router headers, choose how to read the body) -> response body (translate back, account usage).
"""

from __future__ import annotations

import time

from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from extproc.headers import (
    CLIENT_CREDENTIAL_HEADERS,
    CLUSTER_HEADER,
    ESTIMATED_COST_HEADER,
    REASON_HEADER,
    STRATEGY_HEADER,
    TARGET_HEADER,
)
from extproc.providers.base import StreamTranslator, TranslatedResponse, Translator, Usage
from extproc.providers.errors import openai_error
from extproc.providers.registry import translator_for
from extproc.routing.decision import Decision
from extproc.routing.request import BadRequest, ChatRequest, parse_chat_request
from extproc.routing.router import NoTarget
from extproc.routing.targets import Target
from extproc.server import envoy_messages as msg
from extproc.server.runtime import Runtime


class Exchange:
    __slots__ = (
        "_request",
        "_stream",
        "_translator",
        "decision",
        "finished",
        "runtime",
        "started",
        "status",
        "strategy_override",
        "target",
        "usage",
    )

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.started = time.monotonic()
        self.finished = False
        self.strategy_override: str | None = None
        self.decision: Decision | None = None
        self.target: Target | None = None
        self.status = 0
        self.usage: Usage | None = None
        self._request: ChatRequest | None = None
        self._translator: Translator | None = None
        self._stream: StreamTranslator | None = None

    def handle(self, message: ep.ProcessingRequest) -> ep.ProcessingResponse:
        phase = message.WhichOneof("request")
        if phase == "request_headers":
            return self._on_request_headers(message.request_headers)
        if phase == "request_body":
            return self._on_request_body(message.request_body)
        if phase == "response_headers":
            return self._on_response_headers(message.response_headers)
        if phase == "response_body":
            return self._on_response_body(message.response_body)
        self.finished = True
        return ep.ProcessingResponse()

    # -- request ---------------------------------------------------------------------------------------

    def _on_request_headers(self, headers: ep.HttpHeaders) -> ep.ProcessingResponse:
        values = msg.header_map(headers)
        if values.get(":method", "POST") != "POST":
            return self._reject(
                405,
                "Only POST is supported on this endpoint.",
                "method_not_allowed",
                extra_headers=(("allow", "POST"),),
            )
        if headers.end_of_stream:
            return self._reject(
                400, "The request has no body: send a JSON chat-completions request.", "missing_body"
            )
        self.strategy_override = values.get(STRATEGY_HEADER)
        return msg.EMPTY_REQUEST_HEADERS_REPLY

    def _on_request_body(self, body: ep.HttpBody) -> ep.ProcessingResponse:
        router = self.runtime.router
        try:
            request = parse_chat_request(body.body)
            decision = router.decide(request, router.strategy_for(self.strategy_override))
        except BadRequest as error:
            return self._reject(error.status, error.message, error.code, param=error.param)
        except NoTarget as error:
            return self._reject(error.status, error.message, error.code)
        self._request, self.decision = request, decision
        self.target = decision.primary.target
        self._translator = translator_for(self.target.api)
        upstream = self._translator.build_request(request.body, self.target.endpoint)
        self.runtime.metrics.routing_decisions.labels(
            self.target.name, self.target.kind.value, decision.reason
        ).inc()
        set_headers = [
            (CLUSTER_HEADER, self.target.envoy_cluster),
            (":path", upstream.path),
            ("content-length", str(len(upstream.body))),
            *upstream.headers,
        ]
        setting = {name for name, _ in set_headers}
        remove = [h for h in (*CLIENT_CREDENTIAL_HEADERS, STRATEGY_HEADER) if h not in setting]
        return ep.ProcessingResponse(
            request_body=ep.BodyResponse(
                response=ep.CommonResponse(
                    header_mutation=msg.mutation(set_headers, remove),
                    body_mutation=ep.BodyMutation(body=upstream.body),
                    clear_route_cache=True,
                )
            )
        )

    def _reject(
        self,
        status: int,
        message: str,
        code: str | None,
        *,
        param: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> ep.ProcessingResponse:
        self.finished = True
        self.runtime.metrics.bad_requests.labels(str(status), code or "").inc()
        return msg.immediate(
            status,
            openai_error(status, message, code=code, param=param),
            extra_headers,
            details=f"llm_router_{code or status}",
        )

    # -- response --------------------------------------------------------------------------------------

    def _on_response_headers(self, headers: ep.HttpHeaders) -> ep.ProcessingResponse:
        assert self.target is not None and self.decision is not None and self._request is not None
        values = msg.header_map(headers)
        self.status = int(values.get(":status", "0") or 0)
        self.runtime.metrics.requests.labels(self.target.name, str(self.status)).inc()
        router_headers = [
            (TARGET_HEADER, self.target.name),
            (REASON_HEADER, self.decision.reason),
            (ESTIMATED_COST_HEADER, f"{self.decision.primary.cost_usd:.8f}"),
        ]
        streaming = self.status == 200 and values.get("content-type", "").startswith("text/event-stream")
        if headers.end_of_stream:
            self._finish()
            return ep.ProcessingResponse(
                response_headers=ep.HeadersResponse(
                    response=ep.CommonResponse(header_mutation=msg.mutation(router_headers))
                )
            )
        if streaming:
            self._stream = self._translator.stream_translator(self.target.model, self._request.include_usage)
        mode = ProcessingMode(response_body_mode=msg.STREAMED if streaming else msg.BUFFERED)
        remove = ["content-length"] if streaming else []
        return ep.ProcessingResponse(
            response_headers=ep.HeadersResponse(
                response=ep.CommonResponse(header_mutation=msg.mutation(router_headers, remove))
            ),
            mode_override=mode,
        )

    def _on_response_body(self, body: ep.HttpBody) -> ep.ProcessingResponse:
        if self._stream is not None:
            return self._on_stream_chunk(body)
        assert self._translator is not None and self.target is not None
        translated: TranslatedResponse = self._translator.translate_response(
            self.status, body.body, self.target.model
        )
        self.usage = translated.usage
        self._finish()
        set_headers = [("content-length", str(len(translated.body)))]
        if translated.status != self.status:
            set_headers.append((":status", str(translated.status)))
        if translated.retry_after:
            set_headers.append(("retry-after", translated.retry_after))
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
        self.runtime.accounting.record(self)
