"""Tracing, off unless `observability.tracing.otlpEndpoint` is set: OpenTelemetry is imported only then."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from extproc.observability.config import Tracing

Attributes = Mapping[str, str | int | float | bool | list[str]]


class Tracer(Protocol):
    def route(
        self, headers: Mapping[str, str], started_ns: int, attributes: Attributes, error: str | None
    ) -> str | None:
        """Record the routing decision as a span continuing the client's trace; its `traceparent`."""

    def start_attempt(self, parent: str | None, attributes: Attributes) -> tuple[Any, str | None]:
        """Start an upstream attempt's span under `parent`; (span, `traceparent` to send upstream)."""

    def end_attempt(self, span: Any, attributes: Attributes, error: str | None) -> None: ...

    def shutdown(self) -> None: ...


class TracingUnavailable(RuntimeError):
    """Tracing is configured but OpenTelemetry is not installed."""


def start_tracing(config: Tracing) -> Tracer | None:
    if not config.otlp_endpoint:
        return None
    try:
        from extproc.observability.otel import OtelTracer
    except ImportError as error:
        raise TracingUnavailable(
            f"observability.tracing.otlpEndpoint is set but OpenTelemetry is missing ({error}): "
            "pip install 'llm-router[tracing]'"
        ) from error
    return OtelTracer(config)
