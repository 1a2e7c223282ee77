"""Observability without servers: the config section, explain's verdicts, the decision log's finality rules,
webhook delivery (slow, failing, full), cost metrics, reloads, and tracing's absence when it is off."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from extproc.config.loader import ConfigError, parse_config
from extproc.config.model import Config
from extproc.metrics import Metrics
from extproc.observability import webhooks
from extproc.observability.config import Webhook
from extproc.observability.explain import explain
from extproc.observability.observer import AttemptSeen
from extproc.observability.records import fallbacks
from extproc.observability.webhooks import WebhookSender
from extproc.providers.base import Usage
from extproc.routing.request import BadRequest
from extproc.server.carried_decision import CarriedDecision, decode_decision
from extproc.server.runtime import Runtime
from tests.observability_support import WEBHOOK_TOKEN, WebhookStandIn
from tests.routing_fixtures import chat, router_with_healthy_clusters

HI = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10})


def config(observability: dict[str, Any] | None = None, **router: Any) -> Config:
    return parse_config(
        {
            "router": {"routingStrategy": "hybrid", **router},
            "clusters": [
                {"name": "cheap", "endpoint": "http://127.0.0.1:1", "costPerHour": 0.1, "tokensPerSecond": 100},
                {"name": "dear", "endpoint": "http://127.0.0.1:2", "costPerHour": 0.5, "tokensPerSecond": 100},
            ],
            "externalProviders": [
                {"name": "openai", "type": "openai", "apiKey": "k", "defaultModel": "gpt-4o-mini"},
                {"name": "claude", "type": "claude", "apiKey": "k", "defaultModel": "claude-sonnet-4-20250514"},
            ],
            "observability": observability or {},
        },
        env={},
    )


# --- config -------------------------------------------------------------------------------------------


def test_observability_defaults_log_to_stdout_with_no_baseline_webhook_or_tracing() -> None:
    settings = config().observability
    assert (settings.baseline_model, settings.decision_log, settings.webhooks) == (None, "stdout", ())
    assert settings.tracing.otlp_endpoint is None


def test_observability_section_is_read_and_its_secrets_stay_out_of_repr() -> None:
    settings = config(
        {
            "baselineModel": "gpt-4o",
            "decisionLog": {
                "output": "/var/log/decisions.jsonl",
                "webhooks": [{"url": "https://hooks.example.com/x", "headers": {"Authorization": "Bearer s3cr3t"}}],
            },
            "tracing": {"otlpEndpoint": "http://collector:4317", "sampleRatio": 0.25, "serviceName": "edge"},
        }
    ).observability
    hook = settings.webhooks[0]
    assert (hook.name, hook.headers, hook.retries, hook.queue_size) == (
        "hooks.example.com",
        (("authorization", "Bearer s3cr3t"),),
        5,
        10_000,
    )
    assert "s3cr3t" not in repr(settings)
    assert (settings.tracing.sample_ratio, settings.tracing.service_name) == (0.25, "edge")


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"baselineModel": "gpt-9"}, "observability.baselineModel: 'gpt-9' has no price"),
        ({"decisionLog": {"webhooks": [{"url": "ftp://x"}]}}, "observability.decisionLog.webhooks[0].url: must be"),
        (
            {"decisionLog": {"webhooks": [{"url": "http://x", "queueSize": 0}]}},
            "observability.decisionLog.webhooks[0].queueSize: must be",
        ),
        ({"tracing": {"otlpEndpoint": "collector:4317"}}, "observability.tracing.otlpEndpoint: must be"),
        ({"tracing": {"sampleRatio": 2}}, "observability.tracing.sampleRatio: must be between 0 and 1"),
        ({"decisionLog": {"file": "x"}}, "observability.decisionLog.file: unknown key"),
    ],
)
def test_observability_problems_name_their_key_path(section: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        config(section)
    assert any(p.startswith(problem) for p in error.value.problems), error.value.problems


# --- explain ------------------------------------------------------------------------------------------


def verdicts(result: dict[str, Any]) -> dict[str, tuple[str, int | None]]:
    return {c["target"]: (c["outcome"], c["rank"]) for c in result["candidates"]}


def test_explain_says_why_each_candidate_won_or_lost() -> None:
    router = router_with_healthy_clusters(config(maxFallbacks=1))
    router.status["dear"].mark_polled(False, "down", definite=True)
    result = explain(router, HI)
    assert (result["target"], result["chain"], result["reason"]) == ("cheap", ["cheap", "openai"], "cluster_cheap")
    assert verdicts(result) == {
        "cheap": ("chosen", 1),
        "openai": ("fallback 1", 2),
        "claude": ("ranked below the chain", 3),
        "dear": ("skipped", None),
    }
    by_target = {c["target"]: c for c in result["candidates"]}
    assert by_target["dear"]["why"] == "unhealthy"
    assert by_target["claude"]["why"] == "ranked 3 by hybrid; the chain holds 2 (router.maxFallbacks)"
    assert by_target["openai"]["estimated_cost_usd"] == pytest.approx((result["input_tokens"] * 0.15 + 10 * 0.6) / 1e6)


def test_explain_tells_candidates_the_strategy_does_not_rank_and_requests_no_target_takes() -> None:
    router = router_with_healthy_clusters(config(enableExternalFallback=False))
    result = explain(router, HI, "cluster_first")
    assert verdicts(result)["openai"] == ("not ranked", None)
    huge = orjson.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10_000_000})
    refused = explain(router, huge)
    assert refused["target"] is None and refused["error"]["code"] == "context_length_exceeded"
    assert {c["outcome"] for c in refused["candidates"]} == {"skipped"}
    with pytest.raises(BadRequest):
        explain(router, b"{")


# --- the decision log's records and finality ---------------------------------------------------------------


def test_fallback_hops_use_what_was_seen_and_assume_connect_failures_otherwise() -> None:
    chain = ["a", "b", "c"]
    assert fallbacks(chain, {}, 1, "a") == []
    assert fallbacks(chain, {1: ("a", 503)}, 2, "b") == [{"from": "a", "to": "b", "reason": "status_503"}]
    assert fallbacks(chain, {1: ("a", 429)}, 3, "c") == [
        {"from": "a", "to": "b", "reason": "status_429"},
        {"from": "b", "to": "c", "reason": "connect_failure"},
    ]


def runtime_logging_to(path: Path, **router: Any) -> Runtime:
    return Runtime.build(config({"baselineModel": "gpt-4o", "decisionLog": {"output": str(path)}}, **router))


def attempt(runtime: Runtime, number: int, status: int, target: str = "openai", **extra: Any) -> SimpleNamespace:
    """What the observer reads of an AttemptExchange."""
    decision = runtime.router.decide(chat(), "external_first")
    carried = decode_decision(
        CarriedDecision.of(decision, runtime.observer.decided(runtime.observer.request(), decision)).encode()
    )
    values = {
        "request_id": "req-1",
        "attempt": number,
        "target": runtime.router.by_name[target],
        "decision": carried,
        "status": status,
        "finished": True,
        "sent": True,
        "usage": None,
        "cost_usd": None,
        "tenant": "anonymous",
        "request": SimpleNamespace(stream=False),
        "started": 0.0,
        "observed": None,
        **extra,
    }
    return SimpleNamespace(**values)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_a_retriable_failure_is_held_and_continued_by_the_retry(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    runtime = runtime_logging_to(log, maxFallbacks=1)
    observer = runtime.observer
    first = attempt(runtime, 1, 503)
    first.observed = observer.attempt_sent(first)
    observer.attempt_finished(first)
    assert lines(log) == [] and len(observer.journal) == 1
    usage = Usage(prompt_tokens=10, completion_tokens=5)
    second = attempt(runtime, 2, 200, "claude", usage=usage, cost_usd=0.001)
    second.observed = observer.attempt_sent(second)
    observer.attempt_finished(second)
    [record] = lines(log)
    assert record["fallbacks"] == [{"from": "openai", "to": "claude", "reason": "status_503"}]
    assert (record["target"], record["attempts"], record["cost_usd"]) == ("claude", 2, 0.001)
    assert record["baseline_cost_usd"] == pytest.approx((10 * 2.5 + 5 * 10) / 1e6)
    assert len(observer.journal) == 0


async def test_a_held_failure_is_logged_when_no_retry_comes(tmp_path: Path) -> None:
    """Also what a replica writes when the retry went to another replica (which writes the final record)."""
    log = tmp_path / "decisions.jsonl"
    runtime = runtime_logging_to(log, maxFallbacks=1)
    runtime.observer.journal.grace = 0.01
    failed = attempt(runtime, 1, 503)
    failed.observed = runtime.observer.attempt_sent(failed)
    runtime.observer.attempt_finished(failed)
    for _ in range(200):
        if lines(log):
            break
        await asyncio.sleep(0.01)
    [record] = lines(log)
    assert (record["status"], record["outcome"], record["attempts"]) == (503, "error", 1)


async def test_the_last_attempt_and_a_retry_already_under_way_are_never_held(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    runtime = runtime_logging_to(log, maxFallbacks=1)
    observer = runtime.observer
    first = attempt(runtime, 1, 0, finished=False)  # reset before any response: Envoy retries
    first.observed = observer.attempt_sent(first)
    second = attempt(runtime, 2, 503, "claude")  # the retry started before the first attempt's stream closed
    second.observed = observer.attempt_sent(second)
    observer.attempt_finished(first)
    assert lines(log) == [] and len(observer.journal) == 0
    observer.attempt_finished(second)  # the last attempt Envoy makes (maxFallbacks 1): final even with a 503
    [record] = lines(log)
    assert record["fallbacks"] == [{"from": "openai", "to": "claude", "reason": "connect_failure"}]
    assert (record["status"], record["outcome"]) == (503, "error")


def test_cost_report_observes_the_estimate_error_and_the_baseline() -> None:
    runtime = runtime_logging_to(Path("/dev/null"))
    baseline = runtime.observer.costs.record("openai", Usage(1000, 100), actual=0.0002, estimated=0.0004)
    assert baseline == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)
    registry = runtime.metrics.registry
    assert registry.get_sample_value("llm_router_cost_estimate_ratio_sum", {"target": "openai"}) == 0.5
    labels = {"target": "openai", "model": "gpt-4o"}
    assert registry.get_sample_value("llm_router_baseline_cost_usd_total", labels) == pytest.approx(baseline)


def test_a_reload_keeps_the_outputs_unless_the_observability_section_changed(tmp_path: Path) -> None:
    settings = {"decisionLog": {"output": str(tmp_path / "a.jsonl")}}
    first = Runtime.build(config(settings))
    same = Runtime.build(config(settings, maxFallbacks=1), first)
    assert same.observer.log is first.observer.log and same.observer.max_attempts == 2
    changed = Runtime.build(config({"decisionLog": {"output": str(tmp_path / "b.jsonl")}}), same)
    assert changed.observer.log is not same.observer.log


def test_attempt_seen_carries_no_upstream_header_when_tracing_is_off() -> None:
    runtime = runtime_logging_to(Path("/dev/null"))
    observed = runtime.observer.attempt_sent(attempt(runtime, 1, 0))
    assert isinstance(observed, AttemptSeen) and observed.upstream_headers == []


def test_tracing_off_never_imports_opentelemetry(tmp_path: Path) -> None:
    script = """
import sys
from extproc.server.app import Controller
from tests.test_observability_units import config, attempt
controller = Controller(config({"decisionLog": {"output": "off"}}))
observer = controller.runtime.observer
seen = observer.attempt_sent(attempt(controller.runtime, 1, 200))
assert observer.tracer is None and seen.upstream_headers == []
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=Path.cwd())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- webhooks -------------------------------------------------------------------------------------------


def sender(standin: WebhookStandIn, metrics: Metrics, **settings: Any) -> WebhookSender:
    hook = Webhook(
        url=f"{standin.origin}/decisions",
        name="test",
        headers=(("authorization", f"Bearer {WEBHOOK_TOKEN}"),),
        **settings,
    )
    return WebhookSender(hook, metrics)


def dropped(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "llm_router_decision_webhook_dropped_total", {"webhook": "test", "reason": reason}
    )
    return value or 0.0


def queued(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("llm_router_decision_webhook_queue", {"webhook": "test"})


async def test_a_full_queue_drops_new_decisions_and_delivers_every_queued_one() -> None:
    metrics = Metrics()
    async with WebhookStandIn() as standin:
        hooks = sender(standin, metrics, queue_size=3)
        for number in range(5):
            hooks.offer(orjson.dumps({"request_id": str(number)}))  # the sender has not run yet: 3 fit
        assert dropped(metrics, "queue_full") == 2
        assert queued(metrics) == 3
        await hooks.stop(drain=10)
        assert queued(metrics) == 0
    assert [d["request_id"] for d in standin.decisions] == ["0", "1", "2"]


async def test_failed_batches_are_retried_with_backoff_until_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "BACKOFF_SECONDS", 0.01)
    metrics = Metrics()
    async with WebhookStandIn() as standin:
        standin.fail_next(503, times=2)
        standin.fail_next(429)
        hooks = sender(standin, metrics, retries=3, batch_size=10)
        for number in range(4):
            hooks.offer(orjson.dumps({"request_id": str(number)}))
        await hooks.stop(drain=10)
    assert [d["request_id"] for d in standin.decisions] == ["0", "1", "2", "3"]
    assert len(standin.requests) == 4, "one batch, three failures, one success"
    assert metrics.registry.get_sample_value("llm_router_decision_webhook_sent_total", {"webhook": "test"}) == 4


async def test_a_webhook_refusing_or_failing_through_every_retry_counts_the_loss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhooks, "BACKOFF_SECONDS", 0.01)
    metrics = Metrics()
    async with WebhookStandIn() as standin:
        standin.fail_next(400)
        hooks = sender(standin, metrics, retries=3)
        hooks.offer(b'{"request_id": "refused"}')
        await hooks.stop(drain=10)
        standin.fail_next(503, times=3)
        hooks = sender(standin, metrics, retries=2)
        hooks.offer(b'{"request_id": "lost"}')
        await hooks.stop(drain=10)
    assert dropped(metrics, "failed") == 2 and standin.decisions == []
    assert len(standin.requests) == 1 + 3, "a 400 is not retried; a 503 is, twice"
