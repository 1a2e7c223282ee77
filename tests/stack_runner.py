"""Run the real stack (`llm-router up --config FILE` as a child process) on free ports, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import yaml
from prometheus_client.parser import text_string_to_metric_families

from extproc.config.loader import parse_config
from extproc.envoy_config.bootstrap import render_bootstrap_yaml
from extproc.local.envoy_process import EnvoyProcess
from extproc.local.llama_server import free_port
from extproc.local.process import ManagedProcess

T = TypeVar("T")
STARTUP_TIMEOUT = 120.0
# Tests that are not about latency admission must not see a cluster skipped because a loaded test machine
# made its measured speed look slow.
LENIENT_LATENCY = {"maxLatencyMs": 3_600_000}


def cluster_entry(name: str, address: str, cost_per_hour: float, **extra: Any) -> dict[str, Any]:
    """A llama.cpp cluster serving the tiny generated model at `address` (an `endpoint` in `extra` wins)."""
    return {
        "name": name,
        "endpoint": address,
        "provider": name.split("-")[-1],
        "region": "local",
        "costPerHour": cost_per_hour,
        "tokensPerSecond": 200,
        "model": "tiny-llama",
        "contextWindow": 2048,
        **extra,
    }


def local_cluster(name: str, cost_per_hour: float, **extra: Any) -> dict[str, Any]:
    """A cluster that `up` launches itself: a llama.cpp server on the tiny generated model."""
    launch = {"layers": 2, "embeddingSize": 64, "parallel": 2}
    return cluster_entry(name, f"http://127.0.0.1:{free_port()}", cost_per_hour, launch=launch, **extra)


def stack_document(clusters: list[dict[str, Any]], providers: list[dict[str, Any]] = (), **router: Any) -> dict:
    return {
        "server": {
            "port": free_port(),
            "envoyAdminPort": free_port(),
            "grpcPort": free_port(),
            "httpPort": free_port(),
        },
        "router": {"routingStrategy": "hybrid", "healthCheckInterval": "500ms", **LENIENT_LATENCY, **router},
        "clusters": clusters,
        "externalProviders": list(providers),
    }


class RunningStack:
    def __init__(self, document: dict, process: ManagedProcess) -> None:
        self.document = document
        self.process = process
        scheme = "https" if document["server"].get("tls") else "http"
        self.url = f"{scheme}://127.0.0.1:{document['server']['port']}"
        self.admin_url = f"http://127.0.0.1:{document['server']['envoyAdminPort']}"

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")


def stream_chat(stack: RunningStack, body: dict[str, Any], **headers: str) -> tuple[httpx.Response, list[Any]]:
    """A streamed chat completion through the stack: the response, and its JSON events (`[DONE]`, checked to
    come last, left out)."""
    url = f"{stack.url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        lines = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return response, [orjson.loads(line) for line in lines[:-1]]


def scrape(stack: RunningStack) -> dict[str, dict[tuple, float]]:
    """The stack's /metrics: sample name -> sorted label items -> value."""
    text = httpx.get(f"{stack.url}/metrics", timeout=10).text
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def wait_for(probe: Callable[[], T], what: str = "condition", timeout: float = 30.0) -> T:
    """Poll a readiness condition (a probe of /health, /metrics, a log, a store) until it holds; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_until_ready(probe: Coroutine[Any, Any, None]) -> None:
    """Run an async readiness probe to completion from synchronous test code, even where an event loop is
    already running in this thread (Playwright's sync API runs one)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, probe).result()


@contextmanager
def run_stack(
    document: dict, workdir: Path, env: dict[str, str] | None = None, ssl_context: ssl.SSLContext | bool = True
) -> Iterator[RunningStack]:
    """`ssl_context`: how to reach a TLS listener (its CA, a client certificate if it requires one)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "router.yaml"
    config.write_text(yaml.safe_dump(document))
    process = ManagedProcess("llm-router up", workdir / "up.log")
    child_env = {**os.environ, "TMPDIR": str(workdir), **(env or {})}
    process.launch([sys.executable, "-m", "extproc.cli", "up", "--config", str(config)], env=child_env)
    stack = RunningStack(document, process)
    try:
        wait_until_ready(process.wait_http_ready(f"{stack.url}/health", STARTUP_TIMEOUT, ssl_context))
        yield stack
    finally:
        process.stop(grace=10)


@contextmanager
def run_envoy(document: dict, workdir: Path) -> Iterator[str]:
    """Envoy alone (no `up`: only what the caller started, if anything, behind it) on the bootstrap rendered for
    `document` into `workdir`; yields its listener's URL once Envoy's admin `/ready` answers."""
    config = parse_config(document, env={})
    bootstrap = workdir / "envoy.yaml"
    bootstrap.write_text(render_bootstrap_yaml(config))
    envoy = EnvoyProcess(bootstrap, config.server.envoy_admin_port, workdir / "envoy.log")
    envoy.start()
    try:
        wait_until_ready(envoy.wait_ready())
        yield f"http://127.0.0.1:{config.server.port}"
    finally:
        envoy.stop()
