"""Checks a signed request: headers present, timestamp inside the window, signature, nonce not seen before."""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from extproc.security.nonces import NonceStore
from extproc.security.signing import NONCE_HEADER, SIGNATURE_HEADER, SIGNATURE_HEADERS, TIMESTAMP_HEADER, signature

_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_TIMESTAMP = re.compile(r"^\d{1,12}$")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request is refused: an HTTP status, an OpenAI error code and a message (never any secret)."""

    status: int
    code: str
    message: str


class HmacVerifier:
    def __init__(
        self,
        secret: str,
        window: float,
        max_nonces: int,
        clock: Callable[[], float] = time.time,
        nonce_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret = secret
        self.window = window
        self._clock = clock
        # A nonce first seen at t carries a timestamp >= t - window, which stays acceptable until t + 2 x window.
        self.nonces = NonceStore(2 * window, max_nonces, nonce_clock)

    def check(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Rejection | None:
        """None when the request is authentic and fresh (its nonce is then spent), else why not."""
        missing = [h for h in SIGNATURE_HEADERS if not headers.get(h)]
        if missing:
            return Rejection(401, "missing_signature", f"The request is not signed: {', '.join(missing)} missing.")
        timestamp, nonce = headers[TIMESTAMP_HEADER], headers[NONCE_HEADER]
        if not _TIMESTAMP.match(timestamp) or not _NONCE.match(nonce):
            return Rejection(401, "malformed_signature", "The signature's timestamp or nonce is malformed.")
        if abs(self._clock() - int(timestamp)) > self.window:
            return Rejection(
                401, "stale_timestamp", f"The signature's timestamp is outside the accepted {self.window:g}s window."
            )
        expected = signature(self._secret, method, path, timestamp, nonce, body)
        if not hmac.compare_digest(expected.encode(), headers[SIGNATURE_HEADER].lower().encode(errors="replace")):
            return Rejection(401, "invalid_signature", "The signature does not match the request.")
        recorded = self.nonces.add(nonce)
        if recorded is False:
            return Rejection(401, "replayed_nonce", "The signature's nonce was already used.")
        if recorded is None:
            return Rejection(503, "replay_cache_full", "Too many signed requests in the replay window; retry later.")
        return None
