"""First attempts the router's ext_proc prepares itself, and how Envoy's access log closes them (no Envoy)."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from typing import Any

import orjson
import pytest
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.data.accesslog.v3.accesslog_pb2 import HTTPAccessLogEntry
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from extproc.config.loader import parse_config
from extproc.envoy_config.names import DECISION_NAMESPACE, REMOVE_USAGE_EVENT, USAGE_NAMESPACE
from extproc.headers import PREPARED_HEADER
from extproc.observability.records import fallbacks
from extproc.server.access_log import finish_prepared
from extproc.server.carried_decision import decode_decision
from extproc.server.failures import AttemptLog
from extproc.server.route_exchange import RouteExchange
from extproc.server.runtime import Runtime

REQUEST_ID = "0b6f3b8e-prepared"


def runtime(strategy: str = "cluster_first", **router: Any) -> Runtime:
    built = Runtime.build(
        parse_config(
            {
                "router": {"routingStrategy": strategy, **router},
                "clusters": [{"name": "cheap", "endpoint": "http://127.0.0.1:1", "costPerHour": 0.1}],
                "externalProviders": [
                    {"name": "openai", "type": "openai", "apiKey": "sk-provider", "defaultModel": "gpt-4o-mini"},
                    {"name": "claude", "type": "claude", "apiKey": "k", "defaultModel": "claude-sonnet-4-20250514"},
                ],
                "observability": {"decisionLog": {"output": "stdout"}},
            },
            env={},
        )
    )
    built.status["cheap"].mark_polled(True)
    return built


def route(rt: Runtime, body: dict[str, Any], **headers: str) -> ep.ProcessingResponse:
    pairs = {":method": "POST", ":path": "/v1/chat/completions", "x-request-id": REQUEST_ID, **headers}
    exchange = RouteExchange(rt)
    exchange.handle(
        ep.ProcessingRequest(
            request_headers=ep.HttpHeaders(
                headers=HeaderMap(headers=[HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()])
            )
        )
    )
    return exchange.handle(ep.ProcessingRequest(request_body=ep.HttpBody(body=orjson.dumps(body), end_of_stream=True)))


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, **extra}


def set_headers(reply: ep.ProcessingResponse) -> dict[str, str]:
    mutation = reply.request_body.response.header_mutation
    return {h.header.key: h.header.raw_value.decode() for h in mutation.set_headers}


def log_entry(reply: ep.ProcessingResponse, status: int = 200, attempts: int = 1) -> HTTPAccessLogEntry:
    """What Envoy logs for the request: its dynamic metadata, the status and the usage it read."""
    entry = HTTPAccessLogEntry()
    entry.request.request_id = REQUEST_ID
    entry.response.response_code.value = status
    entry.common_properties.upstream_request_attempt_count = attempts
    metadata = entry.common_properties.metadata.filter_metadata
    metadata[DECISION_NAMESPACE].CopyFrom(reply.dynamic_metadata.fields[DECISION_NAMESPACE].struct_value)
    metadata[USAGE_NAMESPACE].update({"prompt_tokens": 10, "completion_tokens": 4})
    return entry


def spend(rt: Runtime) -> float:
    return sum(s.value for m in rt.metrics.spend.collect() for s in m.samples if s.name.endswith("_total"))


def test_a_plain_request_to_a_cluster_is_rewritten_in_the_routers_reply() -> None:
    rt = runtime()
    reply = route(rt, chat(), authorization="Bearer client-key")
    headers = set_headers(reply)
    body = reply.request_body.response.body_mutation.body
    assert headers[PREPARED_HEADER] == "1"
    assert ":path" not in headers  # already the target's path
    assert headers["content-length"] == str(len(body))
    assert orjson.loads(body)["model"] == "local"
    removed = reply.request_body.response.header_mutation.remove_headers
    assert "authorization" in removed
    assert "x-api-key" not in removed  # only the credentials the request carries are removed
    metadata = reply.dynamic_metadata.fields[DECISION_NAMESPACE].struct_value.fields
    assert metadata["prepared"].bool_value is True
    assert decode_decision(metadata["decision"].string_value).prepared
    assert rt.status["cheap"].in_flight == 1 and len(rt.prepared) == 1


def test_a_path_with_a_query_string_is_set_to_the_targets_path() -> None:
    reply = route(runtime(), chat(), **{":path": "/v1/chat/completions?api-version=1"})
    assert set_headers(reply)[":path"] == "/v1/chat/completions"


def test_a_provider_first_attempt_gets_the_providers_key_and_not_the_clients() -> None:
    rt = runtime("external_first")
    reply = route(rt, chat(), authorization="Bearer client-key")
    assert set_headers(reply)["authorization"] == "Bearer sk-provider"
    assert "authorization" not in reply.request_body.response.header_mutation.remove_headers


def test_requests_are_left_to_the_attempt_exchange_when_every_response_passes_the_controller() -> None:
    rt = runtime(responsesThroughController=True)
    reply = route(rt, chat(), **{PREPARED_HEADER: "1"})  # a client's own mark must not skip the attempt exchange
    assert PREPARED_HEADER in reply.request_body.response.header_mutation.remove_headers
    assert not reply.request_body.response.HasField("body_mutation")
    assert rt.status["cheap"].in_flight == 0 and len(rt.prepared) == 0


@pytest.mark.parametrize("asked", [True, False])
def test_a_stream_is_prepared_with_its_usage_event_asked_for_and_removed_if_the_client_did_not_ask(
    asked: bool,
) -> None:
    rt = runtime()
    reply = route(rt, chat(stream=True, stream_options={"include_usage": asked}))
    assert set_headers(reply)[PREPARED_HEADER] == "1"
    assert orjson.loads(reply.request_body.response.body_mutation.body)["stream_options"] == {"include_usage": True}
    metadata = reply.dynamic_metadata.fields[DECISION_NAMESPACE].struct_value.fields
    removes = REMOVE_USAGE_EVENT in metadata and metadata[REMOVE_USAGE_EVENT].bool_value
    assert removes is not asked  # Envoy's Lua filter reads the mark


def test_a_translated_first_target_is_left_to_the_attempt_exchange() -> None:
    rt = runtime("external_first")
    rt.status["openai"].healthy = False
    reply = route(rt, chat())
    assert (
        decode_decision(
            reply.dynamic_metadata.fields[DECISION_NAMESPACE].struct_value.fields["decision"].string_value
        ).chain[0]
        == "claude"
    )
    assert not reply.request_body.response.HasField("body_mutation")


def test_the_access_log_closes_the_attempt_with_its_usage_and_cost() -> None:
    rt = runtime()
    reply = route(rt, chat())
    out = io.StringIO()
    with redirect_stdout(out):
        finish_prepared(rt, log_entry(reply))
    record = orjson.loads(out.getvalue().splitlines()[-1])
    assert (record["request_id"], record["target"], record["status"]) == (REQUEST_ID, "cheap", 200)
    assert record["tokens"] == {"input": 10, "output": 4} and record["cost_usd"] > 0
    assert spend(rt) == pytest.approx(record["cost_usd"])
    assert rt.status["cheap"].in_flight == 0 and len(rt.prepared) == 0


def test_a_retried_prepared_attempt_is_released_and_left_to_the_later_attempts_record() -> None:
    rt = runtime()
    reply = route(rt, chat())
    out = io.StringIO()
    with redirect_stdout(out):
        finish_prepared(rt, log_entry(reply, attempts=2))
    assert out.getvalue() == "" and spend(rt) == 0
    assert rt.status["cheap"].in_flight == 0 and len(rt.prepared) == 0


def test_an_attempt_prepared_before_a_restart_is_still_charged() -> None:
    before, after = runtime(), runtime()
    reply = route(before, chat())
    with redirect_stdout(io.StringIO()):
        finish_prepared(after, log_entry(reply))
    assert spend(after) > 0 and after.status["cheap"].in_flight == 0


def test_an_attempt_whose_log_never_comes_is_closed_once_no_request_can_run() -> None:
    rt = runtime()
    route(rt, chat())
    added = rt.prepared.expire_after
    with redirect_stdout(io.StringIO()) as out:
        rt.prepared.expire(now=float("inf"))
    assert len(rt.prepared) == 0 and rt.status["cheap"].in_flight == 0 and added > 0
    assert orjson.loads(out.getvalue().splitlines()[-1])["outcome"] == "cancelled"


def test_the_hop_from_a_prepared_attempt_says_it_was_retried() -> None:
    log = AttemptLog()
    assert log.hops("r", 2, ["a", "b"], first_prepared=True) == [("a", "b", "retried")]
    assert AttemptLog().hops("r", 2, ["a", "b"]) == [("a", "b", "connect_failure")]
    assert fallbacks(["a", "b"], {}, 2, "b", first_prepared=True) == [{"from": "a", "to": "b", "reason": "retried"}]
