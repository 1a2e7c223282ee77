"""The `observability` section: the savings baseline, the decision log and its webhooks, tracing."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from extproc.config.reader import Reader

DECISION_LOG_STDOUT = "stdout"
DECISION_LOG_OFF = "off"


@dataclass(frozen=True, slots=True)
class Webhook:
    """Where decisions are POSTed (a JSON array per batch), in the background."""

    url: str
    name: str  # a metrics label: `name`, else the URL's host:port
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may hold credentials
    timeout: float = 5.0
    retries: int = 5  # further tries of a batch after a failure, with exponential backoff
    queue_size: int = 10_000  # decisions waiting; beyond this new ones are dropped (and counted)
    batch_size: int = 100


@dataclass(frozen=True, slots=True)
class Tracing:
    otlp_endpoint: str | None = None  # an OTLP/gRPC collector, e.g. http://otel-collector:4317; None: off
    service_name: str = "llm-router"
    sample_ratio: float = 1.0  # of traces this router starts; a client's sampled flag is followed


@dataclass(frozen=True, slots=True)
class ObservabilityConfig:
    baseline_model: str | None = None  # savings are measured against this model of the price table
    decision_log: str = DECISION_LOG_STDOUT  # stdout, off, or a file path (JSON lines, appended)
    webhooks: tuple[Webhook, ...] = ()
    tracing: Tracing = Tracing()


def parse_observability(r: Reader, priced_models: Collection[str]) -> ObservabilityConfig:
    baseline = r.string("baselineModel")
    if baseline is not None and baseline not in priced_models:
        r.problems.add(r.at("baselineModel"), f"{baseline!r} has no price: add it under pricing.{baseline}")
    log = r.section("decisionLog")
    output = log.string("output", DECISION_LOG_STDOUT) or DECISION_LOG_STDOUT
    webhooks = tuple(w for w in (_webhook(Reader(n, at, r.problems)) for at, n in log.items("webhooks")) if w)
    log.finish()
    config = ObservabilityConfig(baseline, output, webhooks, _tracing(r.section("tracing")))
    r.finish()
    return config


def _webhook(r: Reader) -> Webhook | None:
    d = Webhook("", "")
    url = r.string("url", required=True)
    parts = urlsplit(url or "")
    if url and (parts.scheme not in ("http", "https") or not parts.hostname):
        r.problems.add(r.at("url"), "must be an http:// or https:// URL with a host")
        url = None
    headers = r.raw("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        r.problems.add(r.at("headers"), "must be a mapping of header names to strings")
        headers = {}
    webhook = Webhook(
        url=url or "",
        name=r.string("name") or (parts.netloc if url else ""),
        headers=tuple((str(k).lower(), v) for k, v in headers.items()),
        timeout=r.duration("timeout", d.timeout),
        retries=r.integer("retries", d.retries, maximum=20),
        queue_size=r.integer("queueSize", d.queue_size, minimum=1),
        batch_size=r.integer("batchSize", d.batch_size, minimum=1, maximum=10_000),
    )
    if webhook.timeout <= 0:
        r.problems.add(r.at("timeout"), "must be longer than 0s")
    r.finish()
    return webhook if url else None


def _tracing(r: Reader) -> Tracing:
    d = Tracing()
    endpoint = r.string("otlpEndpoint")
    if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
        r.problems.add(r.at("otlpEndpoint"), "must be an http:// or https:// URL (OTLP over gRPC, e.g. port 4317)")
        endpoint = None
    ratio = r.number("sampleRatio", d.sample_ratio, non_negative=True)
    if ratio is not None and ratio > 1:
        r.problems.add(r.at("sampleRatio"), "must be between 0 and 1")
        ratio = d.sample_ratio
    tracing = Tracing(
        otlp_endpoint=endpoint,
        service_name=r.string("serviceName", d.service_name) or d.service_name,
        sample_ratio=d.sample_ratio if ratio is None else ratio,
    )
    r.finish()
    return tracing
