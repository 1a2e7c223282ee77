"""Decisions POSTed to a webhook in the background: a bounded queue, batches, retries with backoff.

A request only pays for a `put_nowait`; a slow or failing webhook fills its queue, never the request path.
A decision accepted into the queue is delivered unless the webhook refuses it permanently (a 4xx other
than 408/429) or keeps failing through every retry; when the queue is full new decisions are dropped.
Each drop is counted in `llm_router_decision_webhook_dropped_total{webhook, reason}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from extproc.metrics import Metrics
from extproc.observability.config import Webhook

log = logging.getLogger(__name__)

BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
_RETRIABLE_STATUSES = frozenset({408, 429})


class WebhookSender:
    def __init__(self, webhook: Webhook, metrics: Metrics) -> None:
        self.webhook = webhook
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(webhook.queue_size)
        self._sent = metrics.webhook_sent.labels(webhook.name)
        self._dropped_full = metrics.webhook_dropped.labels(webhook.name, "queue_full")
        self._dropped_failed = metrics.webhook_dropped.labels(webhook.name, "failed")
        # Kept in step with the queue rather than read from it by a callback, which prometheus_client cannot sum
        # over the processes of `serve --workers`.
        self._queued = metrics.webhook_queue.labels(webhook.name)
        self._headers = {"content-type": "application/json", **dict(webhook.headers)}
        self._task: asyncio.Task[None] | None = None

    def offer(self, record: bytes) -> None:
        """Queue a decision (from the event loop); the sender starts with the first one."""
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._dropped_full.inc()
            return
        self._queued.inc()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"webhook-{self.webhook.name}")

    async def stop(self, drain: float) -> None:
        """Deliver what is queued (up to `drain` seconds), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._queued.dec(self._queue.qsize())  # left undelivered: no longer waiting

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.webhook.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                batch = [await self._queue.get()]
                while len(batch) < self.webhook.batch_size and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                self._queued.dec(len(batch))
                try:
                    await self._deliver(session, batch)
                finally:
                    for _ in batch:
                        self._queue.task_done()

    async def _deliver(self, session: aiohttp.ClientSession, batch: list[bytes]) -> None:
        body = b"[" + b",".join(batch) + b"]"
        problem = ""
        for attempt in range(self.webhook.retries + 1):
            if attempt:
                await asyncio.sleep(min(BACKOFF_SECONDS * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))
            try:
                async with session.post(self.webhook.url, data=body, headers=self._headers) as response:
                    if response.status < 300:
                        self._sent.inc(len(batch))
                        return
                    problem = f"HTTP {response.status}"
                    if response.status < 500 and response.status not in _RETRIABLE_STATUSES:
                        break
            except (aiohttp.ClientError, TimeoutError) as error:
                problem = f"{type(error).__name__}: {error}"
        self._dropped_failed.inc(len(batch))
        log.warning("decision webhook %s dropped %d decisions (%s)", self.webhook.name, len(batch), problem)
