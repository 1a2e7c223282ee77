"""Observability end to end through the real stack (`llm-router up`): actual cost, savings, the decision log
(file and a slow, failing webhook), explain (listener and CLI), tracing into an OTLP collector, and the metric
names the shipped Grafana dashboard and alert rules use, checked against a real scrape."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import promql_parser
import pytest
import yaml

from tests.observability_support import (
    OPENAI_KEY,
    WEBHOOK_TOKEN,
    WebhookStandIn,
    observed_stack_document,
)
from tests.otlp_collector import Collector, otlp_collector
from tests.stack_runner import RunningStack, run_stack, scrape, stream_chat, wait_for
from tests.standins.base import serve_in_thread
from tests.standins.openai_standin import OpenAIStandIn

REPO = Path(__file__).resolve().parents[1]
HI = {"model": "auto", "messages": [{"role": "user", "content": "Hi there router"}], "max_tokens": 12}
EXTERNAL = {"x-llm-router-strategy": "external_first"}
GPT_4O_MINI = (0.15, 0.60)  # USD per 1M tokens, input and output (extproc/config/prices.yaml)
GPT_4O = (2.50, 10.00)
WEBHOOK_DELAY = 1.0  # seconds the webhook takes to accept each batch
RETRY_GRACE = 2.0  # the decision log waits this long for a retry: 1 s + 1 s connect timeout x 1 fallback


@dataclass
class Observed:
    stack: RunningStack
    openai: OpenAIStandIn
    webhook: WebhookStandIn
    collector: Collector
    log: Path
    config: Path

    def post(self, body: dict[str, Any] | bytes = HI, **headers: str) -> httpx.Response:
        kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
        return httpx.post(f"{self.stack.url}/v1/chat/completions", headers=headers, timeout=60, **kwargs)

    def records(self, request_id: str) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [r for r in map(json.loads, lines) if r["request_id"] == request_id]

    def record(self, request_id: str) -> dict[str, Any]:
        return wait_for(lambda: self.records(request_id), f"the decision record of {request_id}", 10)[0]


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    workdir = tmp_path_factory.mktemp("observed")
    openai, webhook = OpenAIStandIn(api_key=OPENAI_KEY), WebhookStandIn(delay=WEBHOOK_DELAY)
    with serve_in_thread(openai), serve_in_thread(webhook), otlp_collector() as (collector, otlp):
        log = workdir / "decisions.jsonl"
        hook = {
            "url": f"{webhook.origin}/decisions",
            "name": "audit",
            "headers": {"authorization": f"Bearer {WEBHOOK_TOKEN}"},
            "batchSize": 4,
        }
        observability = {
            "baselineModel": "gpt-4o",
            "decisionLog": {"output": str(log), "webhooks": [hook]},
            "tracing": {"otlpEndpoint": otlp},
        }
        document = observed_stack_document(openai.origin, observability, maxFallbacks=1)
        with run_stack(document, workdir / "stack") as stack:
            yield Observed(stack, openai, webhook, collector, log, workdir / "stack" / "router.yaml")


def dollars(usage: dict[str, int], prices: tuple[float, float]) -> float:
    return (usage["prompt_tokens"] * prices[0] + usage["completion_tokens"] * prices[1]) / 1e6


# --- actual cost, savings, the decision log ----------------------------------------------------------------


def test_a_provider_response_logs_one_record_with_its_actual_cost(observed: Observed) -> None:
    response = observed.post(HI, **EXTERNAL)
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert response.headers["x-llm-router-target"] == "openai"
    # Prepared by the router's ext_proc, the response passes untouched: the actual cost is logged, not a header.
    assert "x-llm-router-cost-usd" not in response.headers

    record = observed.record(response.headers["x-request-id"])
    assert record["tenant"] == "anonymous"
    assert (record["strategy"], record["reason"]) == ("external_first", "provider_available")
    assert record["target"] == "openai"
    assert record["chain"] == ["openai", "openai-4o"]
    assert record["tokens"] == {"input": usage["prompt_tokens"], "output": usage["completion_tokens"]}
    assert record["cost_usd"] == pytest.approx(dollars(usage, GPT_4O_MINI))
    assert record["baseline_cost_usd"] == pytest.approx(dollars(usage, GPT_4O))
    assert record["estimated_cost_usd"] == pytest.approx(float(response.headers["x-llm-router-estimated-cost-usd"]))
    assert (record["status"], record["outcome"], record["stream"], record["fallbacks"]) == (200, "completed", False, [])
    assert 0 < record["duration_ms"] < 60_000
    assert record["time"].endswith("Z")
    candidates = {c["target"]: c for c in record["candidates"]}
    assert set(candidates) == {"local-aws", "dead-gcp", "openai", "openai-4o"}
    assert candidates["dead-gcp"]["skip"] == "unhealthy"
    assert candidates["openai"]["estimated_cost_usd"] == pytest.approx(record["estimated_cost_usd"])
    assert all(c["estimated_latency_ms"] > 0 for c in candidates.values())


def test_a_cluster_response_is_costed_at_the_clusters_live_price(observed: Observed) -> None:
    response = observed.post(HI)
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-router-target"] == "local-aws"
    record = observed.record(response.headers["x-request-id"])
    cost = record["cost_usd"]
    usage = response.json()["usage"]
    assert record["tokens"] == {"input": usage["prompt_tokens"], "output": usage["completion_tokens"]}
    assert cost > 0
    assert record["baseline_cost_usd"] == pytest.approx(dollars(usage, GPT_4O))
    assert record["baseline_cost_usd"] > cost, "the tiny cluster must be cheaper than gpt-4o"


def test_a_stream_logs_its_cost_and_tokens_at_the_end(observed: Observed) -> None:
    body = {**HI, "stream": True, "stream_options": {"include_usage": True}}
    response, events = stream_chat(observed.stack, body, **EXTERNAL)
    assert "x-llm-router-cost-usd" not in response.headers, "headers leave before the usage is known"
    usage = events[-1]["usage"]
    record = observed.record(response.headers["x-request-id"])
    assert record["stream"] is True
    assert record["tokens"] == {"input": usage["prompt_tokens"], "output": usage["completion_tokens"]}
    assert record["cost_usd"] == pytest.approx(dollars(usage, GPT_4O_MINI))


@pytest.mark.parametrize("fails_first", [False, True], ids=["prepared", "after-a-fallback"])
def test_a_stream_that_did_not_ask_for_usage_gets_no_usage_event_and_is_costed(
    observed: Observed, fails_first: bool
) -> None:
    """The router asks the provider for the usage event; the client, which did not, never sees it: Envoy
    takes it out of the prepared first attempt, the attempt exchange out of a fallback."""
    if fails_first:
        observed.openai.fail_next(503)
    body = {**HI, "stream": True, "messages": [{"role": "user", "content": f"stream, fails first: {fails_first}"}]}
    response, events = stream_chat(observed.stack, body, **EXTERNAL)
    assert events and all(event["choices"] for event in events), "no usage-only event"
    assert all(event.get("usage") is None for event in events)
    assert observed.openai.requests[-1].body["stream_options"] == {"include_usage": True}
    record = observed.record(response.headers["x-request-id"])
    target, prices = ("openai-4o", GPT_4O) if fails_first else ("openai", GPT_4O_MINI)
    assert (record["target"], record["stream"], record["status"]) == (target, True, 200)
    tokens = record["tokens"]
    assert tokens["input"] > 0 and tokens["output"] > 0
    usage = {"prompt_tokens": tokens["input"], "completion_tokens": tokens["output"]}
    assert record["cost_usd"] == pytest.approx(dollars(usage, prices))


def test_a_fallback_is_one_record_telling_the_whole_story(observed: Observed) -> None:
    observed.openai.fail_next(503)
    response = observed.post({**HI, "messages": [{"role": "user", "content": "fall back please"}]}, **EXTERNAL)
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-router-target"] == "openai-4o"
    request_id = response.headers["x-request-id"]
    record = observed.record(request_id)
    # The first attempt was prepared by the router's ext_proc: Envoy retried it without the controller seeing why.
    assert record["fallbacks"] == [{"from": "openai", "to": "openai-4o", "reason": "retried"}]
    assert (record["attempts"], record["target"], record["status"]) == (2, "openai-4o", 200)
    usage = response.json()["usage"]
    assert record["cost_usd"] == pytest.approx(dollars(usage, GPT_4O))
    time.sleep(RETRY_GRACE + 0.5)  # a negative: no held record of the failed attempt is written afterwards
    assert len(observed.records(request_id)) == 1


def test_requests_the_router_refuses_are_logged_with_their_candidates(observed: Observed) -> None:
    invalid = observed.post(b'{"messages": [')
    assert invalid.status_code == 400
    record = observed.record(invalid.headers["x-request-id"])
    assert (record["outcome"], record["status"], record["reason"]) == ("rejected", 400, "invalid_json")
    assert record["candidates"] == [] and record["cost_usd"] is None

    too_long = observed.post({**HI, "max_tokens": 10_000_000})
    assert too_long.status_code == 503, "no target: too small for every live one, and dead-gcp is down"
    record = observed.record(too_long.headers["x-request-id"])
    assert (record["outcome"], record["reason"], record["strategy"]) == ("rejected", "no_target_available", "hybrid")
    skips = {c["target"]: c["skip"] for c in record["candidates"]}
    assert skips["dead-gcp"] == "unhealthy"
    assert all(skips[t].startswith("context window") for t in ("local-aws", "openai", "openai-4o")), skips


def test_a_slow_failing_webhook_never_slows_requests_and_gets_every_decision(observed: Observed) -> None:
    observed.webhook.fail_next(503, times=2)  # its next two batches fail and are retried
    request_ids = []
    for number in range(8):
        response = observed.post({**HI, "messages": [{"role": "user", "content": f"hook {number}"}]}, **EXTERNAL)
        assert response.status_code == 200
        request_ids.append(response.headers["x-request-id"])

    def delivered() -> bool:
        received = {d["request_id"] for d in observed.webhook.decisions}
        return set(request_ids) <= received

    # Every request has been answered while the webhook (slow, and failing its first batches) still owes
    # decisions: requests never wait for it. Request latency itself is measured by the benchmark, not here.
    assert not delivered()

    wait_for(delivered, "every decision at the webhook", 60)
    by_id = {d["request_id"]: d for d in observed.webhook.decisions}
    assert by_id[request_ids[0]] == observed.record(request_ids[0])
    metrics = scrape(observed.stack)
    assert metrics["llm_router_decision_webhook_sent_total"][(("webhook", "audit"),)] >= len(request_ids)


# --- explain ------------------------------------------------------------------------------------------


def outcomes(explanation: dict[str, Any]) -> dict[str, str]:
    return {c["target"]: c["outcome"] for c in explanation["candidates"]}


def test_explain_through_the_listener_calls_no_target(observed: Observed) -> None:
    sent = len(observed.openai.requests)
    hybrid = httpx.post(f"{observed.stack.url}/v1/router/explain", json=HI, timeout=10)
    assert hybrid.status_code == 200, hybrid.text
    explanation = hybrid.json()
    assert (explanation["target"], explanation["reason"]) == ("local-aws", "cluster_cheap")
    assert outcomes(explanation) == {
        "local-aws": "chosen",
        "openai": "fallback 1",
        "openai-4o": "ranked below the chain",
        "dead-gcp": "skipped",
    }
    by_target = {c["target"]: c for c in explanation["candidates"]}
    assert by_target["dead-gcp"]["why"] == "unhealthy" and by_target["dead-gcp"]["eligible"] is False
    assert by_target["openai-4o"]["rank"] == 3
    assert by_target["openai"]["estimated_cost_usd"] == pytest.approx(
        (explanation["input_tokens"] * GPT_4O_MINI[0] + HI["max_tokens"] * GPT_4O_MINI[1]) / 1e6
    )

    external = httpx.post(f"{observed.stack.url}/v1/router/explain", json=HI, headers=EXTERNAL, timeout=10).json()
    assert outcomes(external)["openai"] == "chosen" and outcomes(external)["local-aws"] == "ranked below the chain"
    invalid = httpx.post(f"{observed.stack.url}/v1/router/explain", content=b"[", timeout=10)
    assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "invalid_json"
    assert len(observed.openai.requests) == sent


def test_explain_cli_polls_the_clusters_and_explains_the_same_decision(observed: Observed, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_bytes(orjson.dumps(HI))
    command = [sys.executable, "-m", "extproc.cli", "explain", "--config", str(observed.config), str(request)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    live = httpx.post(f"{observed.stack.url}/v1/router/explain", json=HI, timeout=10).json()
    assert outcomes(json.loads(result.stdout)) == outcomes(live)

    external = subprocess.run([*command, "--strategy", "external_first"], capture_output=True, text=True, timeout=60)
    assert json.loads(external.stdout)["target"] == "openai"
    unknown = subprocess.run([*command, "--strategy", "fastest"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "x-llm-router-strategy" in unknown.stderr


# --- tracing -------------------------------------------------------------------------------------------


def test_traces_continue_the_clients_trace_into_the_target(observed: Observed) -> None:
    trace_id, client_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    response = observed.post(HI, traceparent=f"00-{trace_id}-{client_span}-01", **EXTERNAL)
    assert response.status_code == 200
    upstream = observed.openai.requests[-1].headers["traceparent"]
    version, upstream_trace, attempt_span, flags = upstream.split("-")
    assert (version, upstream_trace, flags) == ("00", trace_id, "01") and attempt_span != client_span

    spans = wait_for(lambda: len(observed.collector.trace(trace_id)) >= 2 and observed.collector.trace(trace_id))
    by_name = {s.name: s for s in spans}
    route, attempt = by_name["llm_router.route"], by_name["llm_router.attempt"]
    assert route.parent_span_id.hex() == client_span
    assert attempt.parent_span_id == route.span_id and attempt.span_id.hex() == attempt_span
    route_attributes = {a.key: a.value for a in route.attributes}
    assert route_attributes["llm_router.target"].string_value == "openai"
    assert route_attributes["llm_router.request_id"].string_value == response.headers["x-request-id"]
    attempt_attributes = {a.key: a.value for a in attempt.attributes}
    assert attempt_attributes["http.response.status_code"].int_value == 200
    assert attempt_attributes["llm_router.cost_usd"].double_value == pytest.approx(
        observed.record(response.headers["x-request-id"])["cost_usd"], abs=1e-8
    )


def test_a_request_without_traceparent_starts_a_trace(observed: Observed) -> None:
    response = observed.post(HI, **EXTERNAL)
    trace_id = observed.openai.requests[-1].headers["traceparent"].split("-")[1]
    spans = wait_for(lambda: len(observed.collector.trace(trace_id)) >= 2 and observed.collector.trace(trace_id))
    route = next(s for s in spans if s.name == "llm_router.route")
    assert not route.parent_span_id and response.status_code == 200


# --- metrics: the shipped dashboard and alert rules against a real scrape ---------------------------------


def metric_names(expression: str) -> set[str]:
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expression.replace("$__range", "1h")), visit)
    return names


def shipped_expressions() -> list[str]:
    dashboard = json.loads((REPO / "charts/llm-router/dashboards/llm-router-cost.json").read_text())
    rules = yaml.safe_load((REPO / "charts/llm-router/alerts/llm-router-alerts.yaml").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]] + [
        r["expr"] for g in rules["groups"] for r in g["rules"]
    ]


def test_every_metric_of_the_dashboard_and_alerts_is_in_a_real_scrape(observed: Observed) -> None:
    assert observed.post(HI).status_code == 200 and observed.post(HI, **EXTERNAL).status_code == 200
    samples = scrape(observed.stack)
    used = set().union(*map(metric_names, shipped_expressions()))
    assert {"llm_router_circuit_open", "llm_router_cost_estimate_ratio_bucket", "llm_router_cluster_health"} <= used
    assert used - samples.keys() == set()


def test_cost_metrics_add_up_to_the_decision_log(observed: Observed) -> None:
    def settled() -> tuple[dict[str, dict], list[dict]] | None:
        """Metrics and log read while no record arrived (earlier requests' access-log entries come batched)."""
        before = observed.log.read_text()
        samples = scrape(observed.stack)
        if observed.log.read_text() != before:
            return None
        return samples, [json.loads(line) for line in before.splitlines()]

    samples, records = wait_for(settled, "a moment without new decision records")
    baseline = sum(r["baseline_cost_usd"] or 0 for r in records)
    assert sum(samples["llm_router_baseline_cost_usd_total"].values()) == pytest.approx(baseline)
    spend = sum(r["cost_usd"] or 0 for r in records)
    assert sum(samples["llm_router_spend_usd_total"].values()) == pytest.approx(spend)
    ratios = samples["llm_router_cost_estimate_ratio_count"]
    assert ratios[(("target", "openai"),)] >= 3 and ratios[(("target", "local-aws"),)] >= 1
    assert samples["llm_router_baseline_cost_usd_total"][(("model", "gpt-4o"), ("target", "openai"))] > 0
