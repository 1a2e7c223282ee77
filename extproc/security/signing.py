"""HMAC-SHA256 request signatures between the router and a cluster (`authType: hmac`).

The signed string binds the method, the path (with its query), a timestamp, a random nonce and the SHA-256 of
the body, so a captured request cannot be altered, replayed later, or replayed at all (the verifier remembers
nonces for as long as their timestamp is acceptable).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from extproc.config.model import ClusterConfig

TIMESTAMP_HEADER = "x-llm-router-timestamp"
NONCE_HEADER = "x-llm-router-nonce"
SIGNATURE_HEADER = "x-llm-router-signature"
SIGNATURE_HEADERS = (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
SCHEME = "LLM-ROUTER-HMAC-SHA256"


def canonical_string(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What is signed: one field per line, the body as its hex SHA-256."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((SCHEME, method.upper(), path, timestamp, nonce, digest)).encode()


def signature(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = canonical_string(method, path, timestamp, nonce, body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_request(
    secret: str, method: str, path: str, body: bytes, *, now: float | None = None, nonce: str | None = None
) -> list[tuple[str, str]]:
    """The three signature headers for one request (a fresh nonce unless one is given)."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = nonce or secrets.token_hex(16)
    return [
        (TIMESTAMP_HEADER, timestamp),
        (NONCE_HEADER, nonce),
        (SIGNATURE_HEADER, signature(secret, method, path, timestamp, nonce, body)),
    ]


def cluster_signature_headers(
    cluster: ClusterConfig | None, method: str, path: str, body: bytes
) -> list[tuple[str, str]]:
    """The signature headers a request to `cluster` needs: none unless its authType is hmac."""
    if cluster is None or cluster.auth_type != "hmac" or not cluster.shared_secret:
        return []
    return sign_request(cluster.shared_secret, method, path, body)
