"""Hot reload: a changed config file (or SIGHUP) is validated and swapped in whole, or rejected and logged.

Requests in flight keep the runtime they started with; new requests get the new one. Envoy's clusters come
from the same file: when the set of targets changes, Envoy needs its config rendered again (logged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from extproc.config.loader import ConfigError, load_config
from extproc.config.model import Config

log = logging.getLogger(__name__)

WATCH_INTERVAL_SECONDS = 1.0


class ConfigWatcher:
    """Polls the file's modification time; calls `apply` with each new valid config."""

    def __init__(self, path: Path, apply: Callable[[Config], None]) -> None:
        self.path = path
        self.apply = apply
        self._stamp = self._mtime()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="config-watcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def reload(self) -> bool:
        """Load and apply the file now; False (old config kept) when it is invalid."""
        try:
            config = load_config(self.path)
        except ConfigError as error:
            log.error("config reload rejected, keeping the running config: %s", error)
            return False
        self.apply(config)
        log.info("config reloaded from %s", self.path)
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)
            stamp = self._mtime()
            if stamp != self._stamp:
                self._stamp = stamp
                self.reload()

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0
