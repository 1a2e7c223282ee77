"""Does a decision webhook that never answers slow requests down? Prints request latency with no webhook and
with a webhook whose every POST hangs, through the real stack (Envoy + controller + a llama.cpp cluster).

    python -m bench.webhook_latency [--requests 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from aiohttp import web

from tests.cluster_helpers import serve_app_in_thread
from tests.stack_runner import local_cluster, run_stack, stack_document

BODY = {"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


def measure(webhook_url: str | None, requests: int, workdir: Path) -> list[float]:
    document = stack_document([local_cluster("local-aws", 0.0928)])
    log = {"output": "off"}
    if webhook_url:
        log["webhooks"] = [{"url": webhook_url, "queueSize": requests * 2, "timeout": "60s"}]
    document["observability"] = {"decisionLog": log}
    with run_stack(document, workdir) as stack, httpx.Client(timeout=60) as client:
        for _ in range(20):  # warm-up
            client.post(f"{stack.url}/v1/chat/completions", json=BODY)
        latencies = []
        for _ in range(requests):
            started = time.perf_counter()
            client.post(f"{stack.url}/v1/chat/completions", json=BODY).raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    async def never_answers(_: web.Request) -> web.Response:
        await __import__("asyncio").Event().wait()
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_post("/decisions", never_answers)
    with tempfile.TemporaryDirectory() as tmp, serve_app_in_thread(app) as hanging:
        rows = [
            ("no webhook", measure(None, args.requests, Path(tmp) / "a")),
            ("webhook that never answers", measure(f"{hanging}/decisions", args.requests, Path(tmp) / "b")),
        ]
    print(f"{'decision webhook':<28} {'requests':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for name, values in rows:
        cuts = statistics.quantiles(values, n=100)
        print(f"{name:<28} {len(values):>8} {cuts[49]:>8.2f} {cuts[89]:>8.2f} {cuts[98]:>8.2f}")


if __name__ == "__main__":
    main()
