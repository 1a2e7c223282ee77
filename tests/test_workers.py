"""`llm-router serve --workers 2` behind real Envoy: one port, two controller processes, one set of metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.stack_runner import run_envoy, stack_document, wait_for
from tests.standins.base import serve_in_thread
from tests.standins.openai_standin import OpenAIStandIn

REQUESTS = 40
HI = {"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    openai = OpenAIStandIn(api_key="k")
    with serve_in_thread(openai):
        provider = {"name": "openai", "type": "openai", "apiKey": "k", "defaultModel": "gpt-4o-mini"}
        document = stack_document([], [{**provider, "baseUrl": openai.base_url}])
        config = tmp_path / "router.yaml"
        config.write_text(yaml.safe_dump(document))
        log = (tmp_path / "controller.log").open("wb")
        command = [sys.executable, "-m", "extproc.cli", "serve", "--config", str(config), "--workers", "2"]
        supervisor = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        admin = f"http://127.0.0.1:{document['server']['httpPort']}"
        try:
            wait_for(lambda: len(children(supervisor.pid)) == 2, "two workers")
            wait_for(lambda: _ok(f"{admin}/livez"), "a worker's admin port")
            with run_envoy(document, tmp_path) as url:
                yield url, admin, supervisor
        finally:
            if supervisor.poll() is None:
                supervisor.send_signal(signal.SIGTERM)
                supervisor.wait(30)
            log.close()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def requests_counted(admin: str) -> float:
    text = httpx.get(f"{admin}/metrics", timeout=10).text
    lines = [line for line in text.splitlines() if line.startswith("llm_router_requests_total{")]
    return sum(float(line.rpartition(" ")[2]) for line in lines)


def test_two_workers_share_the_port_and_their_metrics_add_up(workers: tuple[str, str, subprocess.Popen[bytes]]) -> None:
    url, admin, supervisor = workers
    with httpx.Client(timeout=30) as client:
        statuses = [client.post(f"{url}/v1/chat/completions", json=HI).status_code for _ in range(REQUESTS)]
    assert statuses == [200] * REQUESTS
    # Any worker answers /metrics with every worker's counts (the access log brings the last ones shortly).
    wait_for(lambda: requests_counted(admin) == REQUESTS, f"{REQUESTS} requests in /metrics")
    # So does the dashboard's /v1/router/stats, whichever worker answers (a new connection each time).
    for _ in range(8):
        assert httpx.get(f"{admin}/v1/router/stats", timeout=10).json()["totals"]["requests"] == REQUESTS

    first = children(supervisor.pid)[0]
    os.kill(first, signal.SIGKILL)  # a worker dies: Envoy uses the other, the supervisor starts a new one
    wait_for(lambda: len(children(supervisor.pid)) == 2 and first not in children(supervisor.pid), "a new worker")
    with httpx.Client(timeout=30) as client:
        statuses = [client.post(f"{url}/v1/chat/completions", json=HI).status_code for _ in range(REQUESTS)]
    assert statuses.count(200) >= REQUESTS - 2, statuses  # at most the streams the killed worker held

    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(30) == 0
