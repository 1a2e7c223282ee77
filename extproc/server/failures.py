"""The most recent failure of each target, to label fallbacks with why the previous target was left."""

from __future__ import annotations

import time

RECENT_SECONDS = 30.0


class FailureLog:
    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}

    def record(self, target: str, status: int) -> None:
        if status >= 429:
            self._last[target] = (time.monotonic(), status)

    def last(self, target: str) -> str:
        """`status_<code>` for a recent error response, else `connect_failure` (the attempt got no response)."""
        seen = self._last.get(target)
        if seen and time.monotonic() - seen[0] < RECENT_SECONDS:
            return f"status_{seen[1]}"
        return "connect_failure"
