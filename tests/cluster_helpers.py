"""llama.cpp servers run by the test itself (so it can stop and restart them) and probes of /health."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from extproc.local.llama_server import LlamaServer
from extproc.local.tiny_model import TinyModelSpec, ensure_model
from tests.stack_runner import cluster_entry, wait_until_ready
from tests.standins.base import loop_thread

TINY = TinyModelSpec(name="tiny-llama", context_length=4096)
# About 2-3 ms per generated token here: long generations hold a slot for seconds.
SLOW = TinyModelSpec(name="tiny-llama", n_layers=8, n_embd=512, n_head=8, n_ff=1376, context_length=4096)


def start_llama(spec: TinyModelSpec, log_dir: Path, *, parallel: int = 1, port: int | None = None) -> LlamaServer:
    server = LlamaServer(
        ensure_model(spec),
        port,
        alias=spec.name,
        parallel=parallel,
        ctx_size=2048 * parallel,
        log_path=log_dir / f"llama-{port or 'auto'}-{time.time_ns()}.log",
    )
    server.start()
    wait_until_ready(server.wait_ready())
    return server


@contextmanager
def llama_servers(spec: TinyModelSpec, log_dir: Path, count: int, parallel: int = 1) -> Iterator[list[LlamaServer]]:
    servers: list[LlamaServer] = []
    try:
        for _ in range(count):
            servers.append(start_llama(spec, log_dir, parallel=parallel))
        yield servers
    finally:
        for server in servers:
            server.stop()


def external_cluster(name: str, server: LlamaServer, cost_per_hour: float, **extra: Any) -> dict[str, Any]:
    """A cluster entry for a llama.cpp server the test runs itself (so it can stop and restart it)."""
    return cluster_entry(name, server.base_url, cost_per_hour, **extra)


@contextmanager
def serve_app_in_thread(app: web.Application) -> Iterator[str]:
    """An aiohttp app on a free loopback port in its own event-loop thread; yields its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.5)

    async def start() -> str:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    with loop_thread("app-loop") as loop:
        try:
            yield asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)


def health(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/health", timeout=10).json()
