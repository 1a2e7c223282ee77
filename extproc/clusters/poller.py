"""Polls every llama.cpp cluster in the background and writes what it finds to the status board.

The routing hot path only reads the board; it never waits on a poll.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from extproc.clusters.status import StatusBoard
from extproc.config.model import ClusterConfig

log = logging.getLogger(__name__)


class ClusterPoller:
    def __init__(self, clusters: tuple[ClusterConfig, ...], board: StatusBoard, interval: float) -> None:
        self.clusters = clusters
        self.board = board
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self.first_round = asyncio.Event()  # set once every cluster has been polled at least once

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cluster-poller")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def poll_once(self, session: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(self._poll(session, c) for c in self.clusters))

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=max(min(self.interval, 5.0), 0.5))
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await self.poll_once(session)
                self.first_round.set()
                await asyncio.sleep(self.interval)

    async def _poll(self, session: aiohttp.ClientSession, cluster: ClusterConfig) -> None:
        status = self.board[cluster.name]
        try:
            async with session.get(f"{cluster.endpoint}/health") as response:
                healthy = response.status == 200
                status.mark_polled(healthy, None if healthy else f"/health answered {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            if status.healthy:
                log.warning("cluster %s unreachable: %s", cluster.name, type(exc).__name__)
            status.mark_polled(False, f"unreachable ({type(exc).__name__})")
