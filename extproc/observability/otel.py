"""OpenTelemetry spans for the decision and every upstream attempt, exported over OTLP/gRPC in batches.

W3C trace context: the decision continues the client's `traceparent` (a new trace without one); each attempt
is a child of the decision and the target receives the attempt's own `traceparent`. Imported only when
tracing is configured (extras: `pip install 'llm-router[tracing]'`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from extproc.observability.config import Tracing
from extproc.observability.tracing import Attributes

EXPORT_DELAY_MS = 1000


class OtelTracer:
    def __init__(self, config: Tracing) -> None:
        assert config.otlp_endpoint
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}),
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
        )
        exporter = OTLPSpanExporter(
            endpoint=config.otlp_endpoint, insecure=urlsplit(config.otlp_endpoint).scheme == "http"
        )
        self._provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=EXPORT_DELAY_MS))
        self._tracer = self._provider.get_tracer("llm-router")
        self._propagator = TraceContextTextMapPropagator()

    def route(
        self, headers: Mapping[str, str], started_ns: int, attributes: Attributes, error: str | None
    ) -> str | None:
        parent = self._propagator.extract(headers)
        span = self._tracer.start_span(
            "llm_router.route", parent, SpanKind.SERVER, attributes=attributes, start_time=started_ns
        )
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()
        return self._traceparent(span)

    def start_attempt(self, parent: str | None, attributes: Attributes) -> tuple[Any, str | None]:
        context = self._propagator.extract({"traceparent": parent}) if parent else None
        span = self._tracer.start_span("llm_router.attempt", context, SpanKind.CLIENT, attributes=attributes)
        return span, self._traceparent(span)

    def end_attempt(self, span: Any, attributes: Attributes, error: str | None) -> None:
        span.set_attributes(attributes)
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()

    def shutdown(self) -> None:
        self._provider.shutdown()

    def _traceparent(self, span: trace.Span) -> str | None:
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, trace.set_span_in_context(span))
        return carrier.get("traceparent")
