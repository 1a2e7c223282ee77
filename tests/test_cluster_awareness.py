"""Cluster awareness through real Envoy: health, queue depth, spillover, loading, live $/1K (issue 3)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests.cluster_helpers import SLOW, TINY, external_cluster, health, llama_servers, serve_app_in_thread, start_llama
from tests.conftest import PROVIDER_KEY
from tests.stack_runner import run_stack, stack_document, wait_for
from tests.standins.openai_standin import OpenAIStandIn

SMALL = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
# A generation that holds a slot for seconds on the SLOW model.
# A cluster model: these never go to the external provider (which would rightly refuse `ignore_eos`).
LONG = {"model": "tiny-llama", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 200, "ignore_eos": True}


def provider(standin: OpenAIStandIn) -> dict:
    return {
        "name": "openai",
        "type": "openai",
        "apiKey": PROVIDER_KEY,
        "defaultModel": "gpt-4o-mini",
        "baseUrl": standin.base_url,
    }


def chat(url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300)


def target_of(url: str, body: dict = SMALL) -> str:
    response = chat(url, body)
    assert response.status_code == 200, response.text
    return response.headers["x-llm-router-target"]


def settled(url: str, cluster: str) -> None:
    """Wait until the request just answered by `cluster` is no longer counted in flight there (a prepared
    request is closed by Envoy's access log, batched every 100 ms), so that the counts below are the held ones."""
    wait_for(lambda: health(url)["clusters"][cluster]["in_flight"] == 0, f"{cluster}: the last request closed")


def test_queue_spills_to_the_next_cluster_then_external_and_back(tmp_path: Path, openai_standin: OpenAIStandIn) -> None:
    with llama_servers(SLOW, tmp_path, count=2) as (cheap_server, dear_server):
        document = stack_document(
            # Prices 1000x apart, so that measured throughput (noisy on a loaded machine) cannot reorder them.
            [external_cluster("local-aws", cheap_server, 0.001), external_cluster("local-gcp", dear_server, 1.0)],
            [provider(openai_standin)],
            maxQueueDepth=1,
            maxLatencyMs=10_000_000,
            clusterCostThreshold=100,
            firstByteTimeout="600s",  # queued generations on a loaded machine are slow, not hung
        )
        with run_stack(document, tmp_path / "stack") as stack, ThreadPoolExecutor(8) as pool:
            assert target_of(stack.url) == "local-aws", "the cheaper cluster at idle"
            settled(stack.url, "local-aws")

            held = [pool.submit(chat, stack.url, LONG) for _ in range(3)]
            wait_for(lambda: health(stack.url)["clusters"]["local-aws"]["in_flight"] == 3, "3 on local-aws")
            assert health(stack.url)["clusters"]["local-aws"]["queue_depth"] == 2
            assert target_of(stack.url) == "local-gcp", "spilled over to the other cluster"
            settled(stack.url, "local-gcp")

            held += [pool.submit(chat, stack.url, LONG) for _ in range(3)]
            wait_for(lambda: health(stack.url)["clusters"]["local-gcp"]["in_flight"] == 3, "3 on local-gcp")
            assert target_of(stack.url) == "openai", "both clusters saturated: external under hybrid"

            failed = [(r.status_code, r.text) for r in (f.result() for f in held) if r.status_code != 200]
            assert not failed
            wait_for(lambda: health(stack.url)["clusters"]["local-aws"]["queue_depth"] == 0, "queue drained")
            assert target_of(stack.url) == "local-aws", "back to the cheap cluster"
            metrics = httpx.get(f"{stack.url}/metrics", timeout=10).text
            assert 'llm_router_cluster_queue_depth{cluster="local-aws"}' in metrics


def test_a_stopped_cluster_is_routed_around_without_failures_and_comes_back(tmp_path: Path) -> None:
    with llama_servers(TINY, tmp_path, count=2, parallel=2) as (first, second):
        document = stack_document(
            [external_cluster("local-aws", first, 0.05), external_cluster("local-gcp", second, 0.5)]
        )
        with run_stack(document, tmp_path / "stack") as stack, ThreadPoolExecutor(4) as pool:
            assert target_of(stack.url) == "local-aws"
            port = first.port

            def load(rounds: int) -> list[httpx.Response]:
                return [chat(stack.url, SMALL) for _ in range(rounds)]

            during = [pool.submit(load, 15) for _ in range(4)]
            first.stop()
            responses = [r for f in during for r in f.result()]
            failures = [r for r in responses if r.status_code != 200]
            print(f"requests while stopping a cluster: {len(responses)}, failures: {len(failures)}")
            assert not failures, failures[0].text

            wait_for(lambda: not health(stack.url)["clusters"]["local-aws"]["healthy"], "local-aws marked down")
            assert {target_of(stack.url) for _ in range(5)} == {"local-gcp"}
            metrics = httpx.get(f"{stack.url}/metrics", timeout=10).text
            assert 'llm_router_cluster_health{cluster="local-aws",provider="aws",region="local"} 0.0' in metrics

            restarted = start_llama(TINY, tmp_path, parallel=2, port=port)
            try:
                wait_for(lambda: health(stack.url)["clusters"]["local-aws"]["healthy"], "local-aws back")
                wait_for(lambda: target_of(stack.url) == "local-aws", "traffic back on local-aws")
            finally:
                restarted.stop()


@pytest.fixture
def loading_cluster() -> Iterator[str]:
    """A llama.cpp server still loading its model: /health answers 503 with llama.cpp's body."""

    async def loading(_: web.Request) -> web.Response:
        body = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
        return web.json_response(body, status=503)

    app = web.Application()
    app.router.add_get("/health", loading)
    with serve_app_in_thread(app) as url:
        yield url


def test_a_loading_cluster_is_not_used(tmp_path: Path, loading_cluster: str) -> None:
    with llama_servers(TINY, tmp_path, count=1, parallel=2) as (ready,):
        loading = {**external_cluster("local-aws", ready, 0.01), "endpoint": loading_cluster}
        document = stack_document([loading, external_cluster("local-gcp", ready, 0.5)])
        with run_stack(document, tmp_path / "stack") as stack:
            wait_for(lambda: health(stack.url)["clusters"]["local-aws"]["state"] == "loading", "loading state")
            assert {target_of(stack.url) for _ in range(5)} == {"local-gcp"}


def test_measured_cost_per_1k_matches_llama_counters(tmp_path: Path) -> None:
    with llama_servers(TINY, tmp_path, count=1, parallel=2) as (server,):
        cost_per_hour = 0.0928
        document = stack_document([external_cluster("local-aws", server, cost_per_hour)])
        with run_stack(document, tmp_path / "stack") as stack:
            assert health(stack.url)["clusters"]["local-aws"]["throughput_source"] == "declared"
            for _ in range(6):
                assert chat(stack.url, {**SMALL, "max_tokens": 200, "ignore_eos": True}).status_code == 200
            wait_for(
                lambda: health(stack.url)["clusters"]["local-aws"]["throughput_source"] == "measured",
                "a measured throughput",
            )
            counters = _llama_counters(server.base_url)
            independent_tps = (
                counters["llamacpp:tokens_predicted_total"] / counters["llamacpp:tokens_predicted_seconds_total"]
            )
            expected = cost_per_hour / (independent_tps * 3600) * 1000
            wait_for(
                lambda: (
                    abs(health(stack.url)["clusters"]["local-aws"]["cost_per_1k_tokens"] - expected) <= 0.2 * expected
                ),
                "router's $/1K within 20% of llama's own counters",
            )
            section = health(stack.url)["clusters"]["local-aws"]
            print(f"router $/1K {section['cost_per_1k_tokens']:.8f}, from llama counters {expected:.8f}")
            metrics = httpx.get(f"{stack.url}/metrics", timeout=10).text
            assert 'llm_router_cluster_tokens_per_second{cluster="local-aws"}' in metrics


def _llama_counters(base_url: str) -> dict[str, float]:
    values = {}
    for line in httpx.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split()[:2]
            values[name] = float(value)
    return values
