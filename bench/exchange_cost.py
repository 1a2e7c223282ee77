"""The controller's own work per request, without gRPC: drive its ext_proc servicer in-process with the
messages Envoy would send, as the product's bootstrap configures them.

Envoy's behaviour is read from the rendered bootstrap: which ext_proc filters exist (the listener's, and an
upstream one on the routed cluster if any), their processing modes, the initial metadata they send, and the
endpoint metadata an upstream filter receives as a request attribute. The difference between the CPU per
request measured under load and this in-process cost is the transport: grpc.aio, HTTP/2, protobuf (de)coding
on the wire, the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.data.accesslog.v3.accesslog_pb2 import HTTPAccessLogEntry
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from google.protobuf.struct_pb2 import Struct

from bench.payloads import CHAT_REQUEST_BYTES, COMPLETION_BYTES
from extproc.envoy_config.names import USAGE_NAMESPACE
from extproc.headers import PREPARED_HEADER

EXT_PROC_FILTER = "envoy.filters.http.ext_proc"
HOST_METADATA_ATTRIBUTE = "xds.upstream_host_metadata"


class FakeContext:
    """The bits of grpc.aio.ServicerContext a servicer reads; anything else is a no-op."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


@dataclass(frozen=True, slots=True)
class FilterSpec:
    config: dict[str, Any]

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        items = self.config.get("grpc_service", {}).get("initial_metadata", [])
        return tuple((m["key"], m["value"]) for m in items)

    def mode(self, key: str) -> str:
        return str(self.config.get("processing_mode", {}).get(key, "SEND" if "header" in key else "NONE"))


def _ext_proc(filters: list[dict[str, Any]]) -> FilterSpec | None:
    """The ext_proc filter's config, also when it is wrapped in a matcher (skipped for prepared first tries)."""
    found = next((f for f in filters if f.get("name") == EXT_PROC_FILTER), None)
    if found is None:
        return None
    config = found["typed_config"]
    return FilterSpec(config["extension_config"]["typed_config"] if "extension_config" in config else config)


def _http_filters(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    options = cluster.get("typed_extension_protocol_options", {})
    return [f for o in options.values() for f in o.get("http_filters", [])]


def _headers(pairs: list[tuple[str, str]]) -> ep.HttpHeaders:
    return ep.HttpHeaders(
        headers=HeaderMap(headers=[HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs]), end_of_stream=False
    )


def _metadata_text(filter_metadata: dict[str, dict[str, str]]) -> str:
    """Endpoint metadata as Envoy 1.40 renders it into the request attribute (protobuf short text format)."""
    parts = []
    for namespace, fields in filter_metadata.items():
        inner = " ".join(f'fields {{ key: "{k}" value {{ string_value: "{v}" }} }}' for k, v in fields.items())
        parts.append(f'filter_metadata {{ key: "{namespace}" value {{ {inner} }} }}')
    return " ".join(parts)


def _apply(headers: list[tuple[str, str]], mutation: ep.HeaderMutation) -> list[tuple[str, str]]:
    removed = set(mutation.remove_headers)
    out = {k: v for k, v in headers if k not in removed}
    for option in mutation.set_headers:
        out[option.header.key] = option.header.raw_value.decode("latin-1") or option.header.value
    return list(out.items())


class Stream:
    """One ext_proc stream: feeds messages one by one, each after the servicer answered the previous one."""

    def __init__(self, servicer: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._queue: asyncio.Queue[ep.ProcessingRequest | None] = asyncio.Queue()
        self._requests_sent = self._requests()
        self._replies = servicer.Process(self._requests_sent, FakeContext(metadata))

    async def _requests(self) -> AsyncIterator[ep.ProcessingRequest]:
        while (message := await self._queue.get()) is not None:
            yield message

    async def send(self, message: ep.ProcessingRequest) -> ep.ProcessingResponse | None:
        self._queue.put_nowait(message)
        try:
            return await anext(self._replies)
        except StopAsyncIteration:
            return None

    async def close(self) -> None:
        self._queue.put_nowait(None)
        async for _ in self._replies:
            pass
        # As grpc does when a stream ends: the requests are not read further. Left suspended, the generator
        # would be closed later by the loop's finalizer hook, which this loop never yields to run: the driver's
        # own objects would pile up and the garbage collector's passes over them be counted as the servicer's.
        await self._requests_sent.aclose()


def _common(reply: ep.ProcessingResponse) -> ep.CommonResponse | None:
    kind = reply.WhichOneof("response")
    inner = getattr(reply, kind) if kind else None
    return getattr(inner, "response", None) if inner is not None else None


@dataclass
class Script:
    """The exact messages of one request, per stream, learnt from one real conversation with the servicer,
    and the access log entry Envoy sends for it (when the router prepared the first attempt itself)."""

    streams: list[tuple[tuple[tuple[str, str], ...], list[ep.ProcessingRequest]]]
    logged: HTTPAccessLogEntry | None = None

    @property
    def messages(self) -> int:
        return sum(len(m) for _, m in self.streams)


async def _converse(
    servicer: Any, spec: FilterSpec, headers: list[tuple[str, str]], body: bytes, attributes: dict[str, Struct]
) -> tuple[list[ep.ProcessingRequest], list[tuple[str, str]]]:
    """One stream as Envoy runs it for `spec`; returns the messages sent and the request headers after it."""
    stream = Stream(servicer, spec.metadata)
    sent: list[ep.ProcessingRequest] = []
    response_body_mode = spec.mode("response_body_mode")

    async def send(message: ep.ProcessingRequest) -> ep.ProcessingResponse | None:
        sent.append(message)
        return await stream.send(message)

    async def run() -> list[tuple[str, str]]:
        nonlocal headers, response_body_mode
        if spec.mode("request_header_mode") == "SEND":
            reply = await send(ep.ProcessingRequest(request_headers=_headers(headers), attributes=attributes))
            if reply is None or reply.HasField("immediate_response"):
                return headers
        if spec.mode("request_body_mode") != "NONE":
            reply = await send(ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True)))
            if reply is None or reply.HasField("immediate_response"):
                return headers
            common = _common(reply)
            if common is not None:
                headers = _apply(headers, common.header_mutation)
        if spec.mode("response_header_mode") == "SEND":
            response = [
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-length", str(len(COMPLETION_BYTES))),
            ]
            reply = await send(ep.ProcessingRequest(response_headers=_headers(response)))
            if reply is None:
                return headers
            if reply.HasField("mode_override") and reply.mode_override.response_body_mode:
                response_body_mode = "BUFFERED"
        if response_body_mode != "NONE":
            await send(ep.ProcessingRequest(response_body=ep.HttpBody(body=COMPLETION_BYTES, end_of_stream=True)))
        return headers

    try:
        return sent, await run()
    finally:
        await stream.close()


async def learn_script(servicer: Any, bootstrap: dict[str, Any], body: bytes = CHAT_REQUEST_BYTES) -> Script:
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    route = _ext_proc(manager["http_filters"])
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "127.0.0.1:8080"),
        (":path", "/v1/chat/completions"),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        ("user-agent", "wrk"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "5f0c7a52-6f7e-4b55-9d1f-3d1c2b0a9e8f"),
    ]
    script = Script([])
    if route is not None:
        sent, headers = await _converse(servicer, route, headers, body, {})
        script.streams.append((route.metadata, sent))
    routed = dict(headers).get("x-llm-router-cluster")
    cluster = clusters.get(routed or "")
    if cluster is None:
        return script
    if dict(headers).get(PREPARED_HEADER) == "1":  # Envoy skips the attempt exchange and logs the outcome
        script.logged = _log_entry(dict(headers)["x-request-id"])
        return script
    attempt = _ext_proc(_http_filters(cluster))
    children = cluster.get("cluster_type", {}).get("typed_config", {}).get("clusters")
    target = clusters[children[0]] if children else cluster
    if attempt is None:
        attempt = _ext_proc(_http_filters(target))
    if attempt is None:
        return script
    endpoint = target["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    text = _metadata_text(endpoint.get("metadata", {}).get("filter_metadata", {}))
    attributes = {EXT_PROC_FILTER: Struct()}
    attributes[EXT_PROC_FILTER].update({HOST_METADATA_ATTRIBUTE: text})
    headers = [*headers, ("x-envoy-attempt-count", "1")]
    sent, _ = await _converse(servicer, attempt, headers, body, attributes)
    script.streams.append((attempt.metadata, sent))
    return script


def _log_entry(request_id: str) -> HTTPAccessLogEntry:
    """What Envoy's gRPC access log says of a prepared request: status, one attempt, the usage it read."""
    entry = HTTPAccessLogEntry()
    entry.request.request_id = request_id
    entry.response.response_code.value = 200
    entry.common_properties.upstream_request_attempt_count = 1
    usage = orjson.loads(COMPLETION_BYTES)["usage"]
    entry.common_properties.metadata.filter_metadata[USAGE_NAMESPACE].update(
        {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"]}
    )
    return entry


async def replay(
    servicer: Any, script: Script, repeats: int, log_sink: Callable[[HTTPAccessLogEntry], None] | None = None
) -> float:
    """Seconds per request (all its streams, and its access log entry) replaying the script `repeats` times."""
    start = time.perf_counter()
    for _ in range(repeats):
        for metadata, messages in script.streams:
            stream = Stream(servicer, metadata)
            for message in messages:
                await stream.send(message)
            await stream.close()
        if log_sink is not None and script.logged is not None:
            log_sink(script.logged)
    return (time.perf_counter() - start) / repeats


@dataclass(frozen=True, slots=True)
class ExchangeCost:
    streams: int
    messages: int
    us_per_request: float


def measure(
    servicer_factory: Callable[[], Any],
    bootstrap: dict[str, Any],
    repeats: int = 3000,
    log_sink: Callable[[HTTPAccessLogEntry], None] | None = None,
) -> ExchangeCost:
    async def run() -> ExchangeCost:
        servicer = servicer_factory()
        script = await learn_script(servicer, bootstrap)
        if script.logged is not None and log_sink is not None:
            log_sink(script.logged)
        await replay(servicer, script, max(repeats // 10, 10), log_sink)  # warm-up
        seconds = await replay(servicer, script, repeats, log_sink)
        return ExchangeCost(len(script.streams), script.messages, seconds * 1e6)

    return asyncio.run(run())


class NullServicer:
    """Answers every message with an empty reply: the cost of this in-process driver itself."""

    async def Process(
        self, request_iterator: AsyncIterator[ep.ProcessingRequest], context: Any
    ) -> AsyncIterator[ep.ProcessingResponse]:
        async for _ in request_iterator:
            yield ep.ProcessingResponse()


@dataclass(frozen=True, slots=True)
class ControllerCost:
    controller: ExchangeCost
    driver: ExchangeCost  # the same messages answered by NullServicer

    @property
    def application_us(self) -> float:
        return self.controller.us_per_request - self.driver.us_per_request


@dataclass(frozen=True, slots=True)
class ProductServicer:
    """The product's servicer on the product's bootstrap for a config document, clusters marked healthy."""

    factory: Callable[[], Any]
    bootstrap: dict[str, Any]
    log_sink: Callable[[HTTPAccessLogEntry], None]  # Envoy's access log of a prepared request, accounted

    @classmethod
    def of(cls, document: dict[str, Any]) -> ProductServicer:
        from extproc.config.loader import parse_config
        from extproc.envoy_config.bootstrap import render_bootstrap
        from extproc.server.access_log import finish_prepared
        from extproc.server.ext_proc import ExternalProcessor
        from extproc.server.runtime import Runtime

        config = parse_config(document, env={})
        runtime = Runtime.build(config)
        for cluster in config.clusters:
            runtime.status[cluster.name].mark_polled(True)
        return cls(
            lambda: ExternalProcessor(lambda: runtime),
            render_bootstrap(config),
            lambda entry: finish_prepared(runtime, entry),
        )


@contextlib.contextmanager
def stdout_discarded() -> Iterator[None]:
    """Whatever the controller writes per request to stdout (its decision log) goes to /dev/null: still
    written and flushed as in production, but not into the harness's report."""
    with open(os.devnull, "w") as null_out, contextlib.redirect_stdout(null_out):
        yield


def controller_cost(document: dict[str, Any], repeats: int = 3000) -> ControllerCost:
    """The product's servicer on the product's bootstrap for `document`, clusters marked healthy."""
    product = ProductServicer.of(document)
    with stdout_discarded():
        real = measure(product.factory, product.bootstrap, repeats, product.log_sink)
        script = asyncio.run(learn_script(product.factory(), product.bootstrap))

    async def null() -> ExchangeCost:
        servicer = NullServicer()
        await replay(servicer, script, max(repeats // 10, 10))
        return ExchangeCost(len(script.streams), script.messages, await replay(servicer, script, repeats) * 1e6)

    return ControllerCost(real, asyncio.run(null()))
