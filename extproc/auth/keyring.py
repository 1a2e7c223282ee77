"""The client keys by hash: the inline ones plus the keys file's, re-read when the file changes (rotation)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

from extproc.auth.config import check_keys, hash_key, read_keys_file
from extproc.config.model import ApiKey, AuthConfig
from extproc.config.reader import Problems

log = logging.getLogger(__name__)

RECHECK_SECONDS = 1.0  # how often the keys file is looked at (one stat)

Budget = tuple[float, str]  # (USD, period)


class KeyRing:
    def __init__(self, auth: AuthConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._inline = auth.keys
        self._file = auth.keys_file
        self._clock = clock
        self._stamp: tuple[int, int, int] | None = None  # the file is read again on the first lookup
        self._checked = -RECHECK_SECONDS
        self._by_hash: dict[str, ApiKey] = {}
        self._budgets: dict[str, Budget] = {}
        self._install(auth.file_keys)

    def lookup(self, secret: str) -> ApiKey | None:
        """The key whose sha256 matches `secret`, if any."""
        self._maybe_reload()
        return self._by_hash.get(hash_key(secret))

    def budget(self, tenant: str) -> Budget | None:
        return self._budgets.get(tenant)

    def _install(self, file_keys: Iterable[ApiKey]) -> None:
        keys = [*self._inline, *file_keys]
        self._by_hash = {k.key_hash: k for k in keys}
        self._budgets = {k.tenant: (k.budget_usd, k.budget_period) for k in keys if k.budget_usd is not None}

    def _maybe_reload(self) -> None:
        if self._file is None or self._clock() - self._checked < RECHECK_SECONDS:
            return
        self._checked = self._clock()
        stamp = _stamp(self._file)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        problems = Problems()
        entries = read_keys_file(self._file, problems, "auth.keysFile")
        check_keys([(f"auth.keys[{i}]", k) for i, k in enumerate(self._inline)] + entries, problems)
        if problems:
            log.warning("keys file not reloaded, the previous keys stay in force: %s", "; ".join(problems))
            return
        self._install(k for _, k in entries)
        log.info("keys file reloaded: %d keys in force", len(self._by_hash))


def _stamp(path: str) -> tuple[int, int, int] | None:
    """Changes when the file is rewritten or replaced (an atomic rename gives a new inode)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size
