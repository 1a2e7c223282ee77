"""Fault injection through real Envoy: failover, circuit breaking, rate limits, controller loss, reload.

Each test prints its counts.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from extproc.local.llama_server import free_port
from tests.cluster_helpers import health
from tests.stack_runner import RunningStack, local_cluster, run_envoy, run_stack, stack_document, wait_for
from tests.standins.base import serve_in_thread
from tests.standins.gemini_standin import GeminiStandIn
from tests.standins.openai_standin import OpenAIStandIn

HI = {"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}


def chat(url: str, body: dict = HI, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=timeout)


class Pair:
    """OpenAI stand-in as the primary (cheaper), Gemini stand-in as the fallback, behind one stack."""

    def __init__(self, openai: OpenAIStandIn, gemini: GeminiStandIn, stack: RunningStack) -> None:
        self.openai, self.gemini, self.stack = openai, gemini, stack


@pytest.fixture
def pair(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Pair]:
    router = getattr(request, "param", {})
    openai, gemini = OpenAIStandIn(api_key="k-openai"), GeminiStandIn(api_key="k-gemini")
    with serve_in_thread(openai), serve_in_thread(gemini):
        providers = [
            {
                "name": "openai",
                "type": "openai",
                "apiKey": "k-openai",
                "defaultModel": "gpt-4o-mini",
                "baseUrl": openai.base_url,
                **router.pop("openai", {}),
            },
            {
                "name": "gemini",
                "type": "gemini",
                "apiKey": "k-gemini",
                "defaultModel": "gemini-2.5-pro",
                "baseUrl": gemini.origin,
            },
        ]
        document = stack_document([], providers, **{"routingStrategy": "cost", "maxFallbacks": 1, **router})
        with run_stack(document, tmp_path / "stack") as stack:
            yield Pair(openai, gemini, stack)


@pytest.mark.parametrize("pair", [{"circuitBreakerFailures": 2, "circuitBreakerCooldown": "1s"}], indirect=True)
def test_failing_provider_fails_over_then_its_breaker_opens_and_later_closes(pair: Pair) -> None:
    pair.openai.fail_next(500, times=2)
    served = [chat(pair.stack.url) for _ in range(2)]
    assert [r.headers["x-llm-router-target"] for r in served] == ["gemini", "gemini"]
    assert all(r.status_code == 200 for r in served)

    report = health(pair.stack.url)["providers"]["openai"]
    assert report["circuit"] == "open" and not report["healthy"]
    metrics = httpx.get(f"{pair.stack.url}/metrics", timeout=10).text
    assert 'llm_router_circuit_open{target="openai"} 1.0' in metrics
    seen = len(pair.openai.requests)
    assert chat(pair.stack.url).headers["x-llm-router-target"] == "gemini"
    assert len(pair.openai.requests) == seen, "an open circuit sends nothing to the provider"

    wait_for(lambda: health(pair.stack.url)["providers"]["openai"]["circuit"] == "half_open", "half-open")
    assert chat(pair.stack.url).headers["x-llm-router-target"] == "openai", "the probe goes to the provider"
    # The probe was prepared by the router's ext_proc: its outcome comes with Envoy's (batched) access log.
    wait_for(lambda: health(pair.stack.url)["providers"]["openai"]["circuit"] == "closed", "closed")
    print(f"openai requests: {len(pair.openai.requests)}, gemini requests: {len(pair.gemini.requests)}")


@pytest.mark.parametrize(
    "pair",
    [{"openai": {"apiKey": "revoked-key"}, "circuitBreakerFailures": 2, "circuitBreakerCooldown": "60s"}],
    indirect=True,
)
def test_a_provider_refusing_the_routers_key_is_failed_over_and_its_breaker_opens(pair: Pair) -> None:
    """The router's OpenAI key is refused (401): the request moves on to the next target, and after
    `circuitBreakerFailures` refusals the provider is left alone. The client's request was never at fault."""
    served = [chat(pair.stack.url) for _ in range(2)]
    assert [(r.status_code, r.headers["x-llm-router-target"]) for r in served] == [(200, "gemini"), (200, "gemini")]
    assert len(pair.openai.requests) == 2, "each request tried the cheaper provider first"
    wait_for(lambda: health(pair.stack.url)["providers"]["openai"]["circuit"] == "open", "the breaker to open")
    assert chat(pair.stack.url).headers["x-llm-router-target"] == "gemini"
    assert len(pair.openai.requests) == 2, "an open circuit sends nothing to the provider"


def test_429_with_long_retry_after_moves_to_the_next_target(pair: Pair) -> None:
    pair.openai.fail_next(429, retry_after="30")
    response = chat(pair.stack.url)
    assert response.status_code == 200
    assert response.headers["x-llm-router-target"] == "gemini"


@pytest.mark.parametrize("pair", [{"firstByteTimeout": "1s"}], indirect=True)
def test_a_hung_provider_is_given_up_on_and_the_next_target_answers(pair: Pair) -> None:
    pair.openai.hang_next()
    response = chat(pair.stack.url, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-router-target"] == "gemini"
    assert response.elapsed.total_seconds() < 10


def test_a_connection_closed_mid_response_is_an_error_never_a_hang(pair: Pair) -> None:
    pair.openai.disconnect_next()
    response = chat(pair.stack.url, timeout=30)
    print(f"mid-response disconnect -> {response.status_code} {response.text[:120]}")
    if response.status_code == 200:
        assert response.headers["x-llm-router-target"] == "gemini"
        assert response.json()["choices"][0]["message"]["content"]
    else:
        assert response.status_code in (502, 503)
        assert response.json()["error"]["message"]


@pytest.mark.parametrize("pair", [{"openai": {"requestsPerMinute": 2}, "maxFallbacks": 0}], indirect=True)
def test_rate_limited_target_is_skipped_and_429_when_every_target_is_limited(pair: Pair) -> None:
    targets = [chat(pair.stack.url).headers["x-llm-router-target"] for _ in range(3)]
    assert targets == ["openai", "openai", "gemini"]


def test_429_with_retry_after_when_every_target_is_limited(tmp_path: Path) -> None:
    openai = OpenAIStandIn(api_key="k")
    with serve_in_thread(openai):
        provider = {
            "name": "openai",
            "type": "openai",
            "apiKey": "k",
            "defaultModel": "gpt-4o-mini",
            "baseUrl": openai.base_url,
            "requestsPerMinute": 1,
        }
        with run_stack(stack_document([], [provider]), tmp_path / "stack") as stack:
            assert chat(stack.url).status_code == 200
            limited = chat(stack.url)
            assert limited.status_code == 429
            assert limited.json()["error"]["code"] == "rate_limit_exceeded"
            assert 1 <= int(limited.headers["retry-after"]) <= 60


def _replica_pids(config_path: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--replica" in cmdline and str(config_path).encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def test_two_controller_replicas_one_stopped_under_load_loses_no_request(tmp_path: Path) -> None:
    document = stack_document([local_cluster("local-aws", 0.0928)])
    document["server"]["replicas"] = [{"grpcPort": free_port(), "httpPort": free_port()}]
    with run_stack(document, tmp_path / "stack") as stack, ThreadPoolExecutor(4) as pool:
        sent = []

        def load() -> list[int]:
            statuses = []
            for _ in range(60):
                statuses.append(chat(stack.url).status_code)
                sent.append(1)
            return statuses

        workers = [pool.submit(load) for _ in range(4)]
        wait_for(lambda: len(sent) >= 20, "load running")
        (replica,) = _replica_pids(tmp_path / "stack" / "router.yaml")
        os.kill(replica, signal.SIGTERM)
        wait_for(lambda: not _replica_pids(tmp_path / "stack" / "router.yaml"), "replica exited", timeout=30)
        statuses = [s for w in workers for s in w.result()]
        failures = [s for s in statuses if s != 200]
        print(f"requests while a controller replica stopped: {len(statuses)}, failures: {len(failures)}")
        assert statuses and not failures


def test_with_no_controller_envoy_fails_closed_with_an_openai_shaped_error(tmp_path: Path) -> None:
    """The documented choice: no controller, no routing (a request could not be priced, authorised or rewritten)."""
    document = stack_document([local_cluster("local-aws", 0.0928)])
    with run_envoy(document, tmp_path) as url:
        response = chat(url, timeout=30)
        print(f"no controller -> {response.status_code} {response.text}")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "router_unavailable"


def test_config_reload_under_load_loses_no_request(tmp_path: Path) -> None:
    document = stack_document([local_cluster("local-aws", 0.0928)])
    with run_stack(document, tmp_path / "stack") as stack, ThreadPoolExecutor(3) as pool:
        config_path = tmp_path / "stack" / "router.yaml"
        stop = threading.Event()

        def load() -> list[httpx.Response]:
            responses = []
            while not stop.is_set() and len(responses) < 300:
                responses.append(chat(stack.url))
            return responses

        workers = [pool.submit(load) for _ in range(3)]
        changed = {**document, "router": {**document["router"], "routingStrategy": "cost"}}
        config_path.write_text(yaml.safe_dump(changed))
        wait_for(lambda: chat(stack.url).headers.get("x-llm-router-reason") == "cheapest", "new strategy in use")
        config_path.write_text("router: {routingStrategy: nonsense}\n")  # invalid: rejected, old config kept
        wait_for(lambda: "config reload rejected" in stack.log(), "the invalid config rejected")
        assert chat(stack.url).headers.get("x-llm-router-reason") == "cheapest"
        stop.set()
        responses = [r for w in workers for r in w.result()]
        failures = [r for r in responses if r.status_code != 200]
        print(f"requests during two reloads: {len(responses)}, failures: {len(failures)}")
        assert responses and not failures
