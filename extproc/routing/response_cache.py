"""Exact-match cache of non-streamed completions for deterministic requests (temperature 0), per tenant.

In-process LRU with a TTL and size bounds; one per controller replica. Never shared across tenants: the
tenant is part of the key.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any

import orjson

from extproc.config.model import CacheConfig


class ResponseCache:
    def __init__(self, config: CacheConfig) -> None:
        self.config = config
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def key(self, tenant: str, body: dict[str, Any]) -> str | None:
        """The cache key of a request, or None when its answer must not be reused."""
        if not self.config.enabled or body.get("stream") or body.get("temperature") != 0 or body.get("n", 1) != 1:
            return None
        normalised = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(tenant.encode() + b"\0" + normalised).hexdigest()

    def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, body = entry
        if time.monotonic() - stored_at > self.config.ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return body

    def put(self, key: str, body: bytes) -> None:
        if len(body) > self.config.max_entry_bytes:
            return
        self._entries[key] = (time.monotonic(), body)
        self._entries.move_to_end(key)
        while len(self._entries) > self.config.max_entries:
            self._entries.popitem(last=False)
