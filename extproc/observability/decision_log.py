"""Where decision records go: one JSON line each to stdout or a file, the webhooks, and the recent-decisions
ring the dashboard shows."""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from typing import Any, BinaryIO

import orjson

from extproc.metrics import Metrics
from extproc.observability.config import DECISION_LOG_OFF, DECISION_LOG_STDOUT, ObservabilityConfig
from extproc.observability.webhooks import WebhookSender

RECENT = 100
STDOUT_FLUSH_SECONDS = 0.05  # lines written to stdout within this long leave in one write
WEBHOOK_DRAIN_SECONDS = 5.0


class DecisionLog:
    def __init__(self, config: ObservabilityConfig, metrics: Metrics) -> None:
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self._output = config.decision_log
        self._file: BinaryIO | None = None
        if self._output not in (DECISION_LOG_STDOUT, DECISION_LOG_OFF):
            # unbuffered and O_APPEND: one write per line, so replicas can share the file
            self._file = open(self._output, "ab", buffering=0)  # noqa: SIM115 - held open until stop()
        self.webhooks = [WebhookSender(w, metrics) for w in config.webhooks]
        self._flush_scheduled = False

    def emit(self, record: dict[str, Any]) -> None:
        self.recent.append(record)
        line = orjson.dumps(record)
        if self._file is not None:
            self._file.write(line + b"\n")
        elif self._output == DECISION_LOG_STDOUT:
            sys.stdout.write(line.decode() + "\n")
            self._flush_stdout_soon()
        for webhook in self.webhooks:
            webhook.offer(line)

    def _flush_stdout_soon(self) -> None:
        """One flush (one write) for the lines of the next few milliseconds; at once without an event loop."""
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            sys.stdout.flush()
            return
        self._flush_scheduled = True
        loop.call_later(STDOUT_FLUSH_SECONDS, self._flush_stdout)

    def _flush_stdout(self) -> None:
        self._flush_scheduled = False
        sys.stdout.flush()

    async def stop(self) -> None:
        if self._output == DECISION_LOG_STDOUT:
            sys.stdout.flush()
        for webhook in self.webhooks:
            await webhook.stop(WEBHOOK_DRAIN_SECONDS)
        if self._file is not None:
            self._file.close()
            self._file = None
