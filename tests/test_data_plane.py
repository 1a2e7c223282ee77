"""End to end through real Envoy, the controller and a real llama.cpp server (issue: routing data plane)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import openai
import orjson
import pytest
import yaml

from extproc.local.envoy_process import envoy_binary
from tests.conftest import PROVIDER_KEY
from tests.stack_runner import RunningStack, scrape, stream_chat, wait_for
from tests.standins.openai_standin import OpenAIStandIn

HI = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10}
CLIENT_KEY = "sk-client-own-key-77"


def post(stack: RunningStack, body: dict | bytes, **headers: str) -> httpx.Response:
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    return httpx.post(f"{stack.url}/v1/chat/completions", headers=headers, timeout=60, **kwargs)


def test_curl_style_request_gets_a_llama_completion_with_usage_and_router_headers(stack: RunningStack) -> None:
    response = post(stack, HI)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "tiny-llama"
    assert body["usage"]["completion_tokens"] > 0 and body["usage"]["prompt_tokens"] > 0
    assert response.headers["x-llm-router-target"] == "local-aws"
    assert response.headers["x-llm-router-reason"] == "cluster_cheap"
    assert float(response.headers["x-llm-router-estimated-cost-usd"]) > 0


def test_openai_sdk_gets_a_completion(stack: RunningStack) -> None:
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=CLIENT_KEY)
    completion = client.chat.completions.create(
        model="gpt-4o-mini", max_tokens=8, messages=[{"role": "user", "content": "Say hi"}]
    )
    assert completion.choices[0].message.role == "assistant"
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_openai_sdk_streams_from_the_cluster(stack: RunningStack) -> None:
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=CLIENT_KEY)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", max_tokens=8, stream=True, messages=[{"role": "user", "content": "Say hi"}]
        )
    )
    assert chunks and all(chunk.choices for chunk in chunks), "no usage-only chunk unless the client asked"
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")


@pytest.mark.parametrize(
    ("strategy", "reason", "target"),
    [
        ("external_first", "provider_available", "openai"),
        ("cluster_first", "cluster_available", "local-aws"),
        ("hybrid", "cluster_cheap", "local-aws"),
        ("cost", "cheapest", None),  # which is cheaper depends on the cluster's measured speed
        ("latency", "fastest", None),
    ],
)
def test_strategy_override_header_is_honoured(
    stack: RunningStack, strategy: str, reason: str, target: str | None
) -> None:
    response = post(stack, HI, **{"x-llm-router-strategy": strategy})
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-router-reason"] == reason
    assert response.headers["x-llm-router-target"] in ((target,) if target else ("openai", "local-aws"))


def test_external_target_gets_its_own_key_and_model_never_the_clients(
    stack: RunningStack, openai_standin: OpenAIStandIn
) -> None:
    before = len(openai_standin.requests)
    response = post(
        stack,
        {**HI, "model": "gpt-4o"},
        authorization=f"Bearer {CLIENT_KEY}",
        **{"x-api-key": CLIENT_KEY, "x-llm-router-strategy": "external_first"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-router-target"] == "openai"
    received = openai_standin.requests[before:]
    assert len(received) == 1
    headers = received[0].headers
    assert headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert "x-api-key" not in headers and "x-llm-router-strategy" not in headers
    assert CLIENT_KEY not in str(headers)
    assert received[0].body["model"] == "gpt-4o-mini"
    assert "transfer-encoding" not in headers
    assert int(headers["content-length"]) == len(orjson.dumps(received[0].body))
    assert received[0].path == "/v1/chat/completions"


def test_unknown_strategy_override_is_a_400(stack: RunningStack) -> None:
    response = post(stack, HI, **{"x-llm-router-strategy": "fastest-please"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_strategy"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"model": "gpt-4o-mini", "messages": [', "invalid_json"),
        (b'{"model": "gpt-4o-mini"}', "missing_required_parameter"),
        (b'{"model": "gpt-4o-mini", "messages": []}', "empty_array"),
        (b"[1, 2]", "invalid_type"),
        (b'{"messages": [{"role": "wizard", "content": "x"}]}', "invalid_value"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}', "invalid_type"),
        (b'\xff\xfe{"messages": 1}', "invalid_json"),
    ],
)
def test_bad_input_gets_an_openai_shaped_400(stack: RunningStack, body: bytes, code: str) -> None:
    response = post(stack, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"
    assert error["message"]


def test_unknown_path_is_an_openai_shaped_404(stack: RunningStack) -> None:
    response = httpx.post(f"{stack.url}/v1/embeddings", json={"input": "x"}, timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"


def test_health_through_the_listener_has_the_seed_shape(stack: RunningStack) -> None:
    response = httpx.get(f"{stack.url}/health", timeout=10)
    assert response.status_code == 200
    health = response.json()
    assert {"status", "healthy_clusters", "total_clusters", "healthy_providers", "total_providers", "timestamp"} <= set(
        health
    )
    assert (health["healthy_clusters"], health["total_clusters"]) == (1, 1)
    assert (health["healthy_providers"], health["total_providers"]) == (1, 1)
    assert health["status"] == "healthy"


def ext_proc_streams(stack: RunningStack) -> int:
    """gRPC streams Envoy's ext_proc filters (the router's and every attempt's) have opened so far."""
    stats = httpx.get(f"{stack.admin_url}/stats", params={"filter": r"ext_proc\.streams_started$"}, timeout=10)
    return sum(int(line.rpartition(": ")[2]) for line in stats.text.splitlines())


def test_requests_the_router_prepares_cost_one_controller_exchange(stack: RunningStack) -> None:
    """A plain request and a stream are rewritten for the cluster by the router's ext_proc: Envoy skips the
    attempt exchange. The usage event the router asks the cluster for reaches only a client that asked for it
    (Envoy removes it for the others)."""
    before, tokens = ext_proc_streams(stack), output_tokens_counted(stack)
    response = post(stack, HI)
    assert response.status_code == 200
    assert ext_proc_streams(stack) - before == 1
    tokens = counted_after(stack, tokens, response.json()["usage"]["completion_tokens"])
    _, events = stream_chat(stack, {**HI, "stream": True, "stream_options": {"include_usage": True}})
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0
    assert ext_proc_streams(stack) - before == 2
    tokens = counted_after(stack, tokens, events[-1]["usage"]["completion_tokens"])
    _, events = stream_chat(stack, {**HI, "stream": True})
    assert events and all(e["choices"] for e in events) and "usage" not in events[-1]
    assert ext_proc_streams(stack) - before == 3
    wait_for(lambda: output_tokens_counted(stack) > tokens, "the stream's usage, read by Envoy, counted")


def output_tokens_counted(stack: RunningStack) -> float:
    return scrape(stack).get("llm_router_tokens_total", {}).get((("provider", "aws"), ("type", "output")), 0.0)


def counted_after(stack: RunningStack, before: float, tokens: int) -> float:
    """The output-token count once a response's `tokens` are in it (Envoy's access log comes batched)."""
    wait_for(lambda: output_tokens_counted(stack) >= before + tokens, f"{tokens} more output tokens counted")
    assert output_tokens_counted(stack) == before + tokens
    return before + tokens


def test_metrics_through_the_listener_count_decisions_and_tokens(stack: RunningStack) -> None:
    assert post(stack, HI).status_code == 200
    # A prepared request's status and usage come with Envoy's access log, batched: a few milliseconds later.
    text = wait_for(
        lambda: (t := httpx.get(f"{stack.url}/metrics", timeout=10).text) and "llm_router_tokens_total{" in t and t,
        "token counts in /metrics",
    )
    assert 'llm_router_routing_decisions_total{reason="cluster_cheap",target="local-aws",type="cluster"}' in text
    assert 'llm_router_requests_total{status="200",target="local-aws"}' in text
    assert 'llm_router_tokens_total{provider="aws",type="output"}' in text
    assert 'llm_router_cluster_health{cluster="local-aws",provider="aws",region="local"} 1.0' in text
    assert 'llm_router_cluster_cost_per_1k_tokens{cluster="local-aws",provider="aws"}' in text
    assert 'llm_router_provider_cost_per_1k_tokens{model="gpt-4o-mini",provider="openai"} 0.0006' in text
    assert "llm_router_request_duration_seconds_bucket" in text
    assert PROVIDER_KEY not in text


def test_models_lists_what_the_router_serves(stack: RunningStack) -> None:
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="unused")
    listed = [m.id for m in client.models.list()]
    assert sorted(listed) == ["auto", "gpt-4o-mini", "tiny-llama"]  # each once: both clusters serve tiny-llama
    model = client.models.retrieve("tiny-llama")
    assert (model.id, model.object, model.owned_by) == ("tiny-llama", "model", "self-hosted")
    assert client.models.retrieve("gpt-4o-mini").owned_by == "openai"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("no-such-model")
    assert missing.value.body["code"] == "model_not_found"


def test_rendered_envoy_config_passes_envoy_validate(stack: RunningStack, tmp_path: Path) -> None:
    config = tmp_path / "router.yaml"
    config.write_text(yaml.safe_dump(stack.document))
    rendered = tmp_path / "envoy.yaml"
    subprocess.run(
        ["llm-router", "envoy-config", "--config", str(config), "-o", str(rendered)],
        check=True,
        env={"TEST_OPENAI_KEY": "x", "PATH": str(envoy_binary().parent) + ":/usr/bin:/bin"},
    )
    assert PROVIDER_KEY not in rendered.read_text()
    result = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(rendered)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
