"""Polls every llama.cpp cluster in the background and writes what it finds to the status board.

Per cluster and interval: `/health` (503 while the model loads), `/metrics` (queue, in-slot requests,
token counters -> windowed throughput) and, once per (re)start, `/props` (slots and context per slot).
The routing hot path only reads the board; it never waits on a poll.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from extproc.clusters.llama_metrics import parse_llama_metrics
from extproc.clusters.status import StatusBoard, TargetStatus
from extproc.clusters.throughput import ThroughputWindow
from extproc.config.model import ClusterConfig
from extproc.security.cluster_client import request_options

log = logging.getLogger(__name__)

THROUGHPUT_WINDOW_SECONDS = 60.0


class ClusterPoller:
    def __init__(self, clusters: tuple[ClusterConfig, ...], board: StatusBoard, interval: float) -> None:
        self.clusters = clusters
        self.board = board
        self.interval = interval
        self.first_round = asyncio.Event()  # set once every cluster has been polled at least once
        self._generation = {c.name: ThroughputWindow(THROUGHPUT_WINDOW_SECONDS) for c in clusters}
        self._prompt = {c.name: ThroughputWindow(THROUGHPUT_WINDOW_SECONDS) for c in clusters}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cluster-poller")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def poll_once(self, session: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(self._poll(session, c) for c in self.clusters))

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=min(max(self.interval, 2.0), 5.0))
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                started = time.monotonic()
                await self.poll_once(session)
                self.first_round.set()
                await asyncio.sleep(max(self.interval - (time.monotonic() - started), 0.0))

    async def _poll(self, session: aiohttp.ClientSession, cluster: ClusterConfig) -> None:
        status = self.board[cluster.name]
        base = str(cluster.endpoint)
        try:
            async with session.get(f"{base}/health", **request_options(cluster, "/health")) as response:
                if response.status != 200:
                    loading = response.status == 503
                    status.mark_polled(False, "loading" if loading else f"/health {response.status}", definite=loading)
                    return
            if status.total_slots is None or not status.healthy:
                await self._read_props(session, cluster, status)
            async with session.get(f"{base}/metrics", **request_options(cluster, "/metrics")) as response:
                if response.status == 200:
                    self._apply_metrics(cluster.name, status, await response.text())
        except (aiohttp.ClientError, TimeoutError) as exc:
            if status.healthy:
                log.warning("cluster %s unreachable: %s", cluster.name, type(exc).__name__)
            status.mark_polled(False, f"unreachable ({type(exc).__name__})")
            status.total_slots = None
            return
        status.mark_polled(True)

    @staticmethod
    async def _read_props(session: aiohttp.ClientSession, cluster: ClusterConfig, status: TargetStatus) -> None:
        async with session.get(f"{cluster.endpoint}/props", **request_options(cluster, "/props")) as response:
            if response.status != 200:
                return
            props = await response.json(content_type=None)
        slots = props.get("total_slots")
        status.total_slots = slots if isinstance(slots, int) and slots > 0 else None
        n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx")
        status.context_window = n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None

    def _apply_metrics(self, name: str, status: TargetStatus, text: str) -> None:
        metrics = parse_llama_metrics(text)
        status.queue_depth = metrics.deferred
        status.processing = metrics.processing
        now = time.monotonic()
        generation, prompt = self._generation[name], self._prompt[name]
        generation.add(now, metrics.tokens_predicted, metrics.predicting_seconds)
        prompt.add(now, metrics.prompt_tokens, metrics.prompt_seconds)
        status.measured_tokens_per_second = generation.rate() or status.measured_tokens_per_second
        status.measured_prompt_tokens_per_second = prompt.rate() or status.measured_prompt_tokens_per_second
