"""HMAC signing and verification, the nonce store, and the ext_authz answers built from them (no network)."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from envoy.service.auth.v3 import external_auth_pb2 as authz
from google.rpc import code_pb2
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter

from extproc.config.model import ClusterConfig, Secret, Url
from extproc.security.authz import SignatureAuthorization
from extproc.security.cluster_client import request_options
from extproc.security.nonces import NonceStore
from extproc.security.signing import SIGNATURE_HEADERS, cluster_signature_headers, sign_request
from extproc.security.tls_config import ClusterTls
from extproc.security.verifier import HmacVerifier
from tests.security_helpers import Certs, dev_certs  # noqa: F401

SECRET = "unit-test-secret-91c2"
PATH = "/v1/chat/completions"
BODY = b'{"model": "tiny-llama", "messages": [{"role": "user", "content": "Hi"}]}'
NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def verifier(window: float = 60.0, max_nonces: int = 100, clock: Clock | None = None) -> HmacVerifier:
    clock = clock or Clock()
    return HmacVerifier(SECRET, window, max_nonces, clock=clock, nonce_clock=clock)


def signed(body: bytes = BODY, *, at: float = NOW, secret: str = SECRET, method: str = "POST") -> dict[str, str]:
    return dict(sign_request(secret, method, PATH, body, now=at))


def code_of(
    v: HmacVerifier, headers: dict[str, str], body: bytes = BODY, method: str = "POST", path: str = PATH
) -> str:
    rejection = v.check(method, path, headers, body)
    return rejection.code if rejection else "ok"


def test_a_signed_request_verifies() -> None:
    assert code_of(verifier(), signed()) == "ok"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"body": BODY.replace(b"Hi", b"Ho")}, "invalid_signature"),
        ({"path": "/v1/completions"}, "invalid_signature"),
        ({"method": "PUT"}, "invalid_signature"),
    ],
)
def test_any_change_to_method_path_or_body_breaks_the_signature(change: dict, expected: str) -> None:
    assert code_of(verifier(), signed(), **change) == expected


@given(st.binary(max_size=256), st.binary(max_size=256))
def test_a_signature_holds_for_its_own_body_only(signed_body: bytes, sent_body: bytes) -> None:
    expected = "ok" if signed_body == sent_body else "invalid_signature"
    assert code_of(verifier(), signed(signed_body), sent_body) == expected


def test_another_secret_is_rejected() -> None:
    assert code_of(verifier(), signed(secret="not-the-secret")) == "invalid_signature"


@pytest.mark.parametrize(("offset", "expected"), [(-61, "stale_timestamp"), (61, "stale_timestamp"), (-60, "ok")])
def test_timestamps_outside_the_window_are_stale(offset: float, expected: str) -> None:
    assert code_of(verifier(window=60), signed(at=NOW + offset)) == expected


def test_a_replayed_nonce_is_rejected() -> None:
    v, headers = verifier(), signed()
    assert code_of(v, headers) == "ok"
    assert code_of(v, headers) == "replayed_nonce"


def test_a_forged_request_does_not_spend_the_nonce() -> None:
    v, headers = verifier(), signed()
    assert code_of(v, headers, BODY + b" ") == "invalid_signature"
    assert code_of(v, headers) == "ok"


@pytest.mark.parametrize("missing", SIGNATURE_HEADERS)
def test_each_missing_header_is_reported(missing: str) -> None:
    headers = {k: v for k, v in signed().items() if k != missing}
    rejection = verifier().check("POST", PATH, headers, BODY)
    assert rejection is not None and rejection.code == "missing_signature" and missing in rejection.message


@pytest.mark.parametrize(
    ("header", "value"),
    [("x-llm-router-timestamp", "soon"), ("x-llm-router-nonce", "short"), ("x-llm-router-nonce", "a b" * 10)],
)
def test_malformed_timestamp_or_nonce_is_rejected(header: str, value: str) -> None:
    assert code_of(verifier(), {**signed(), header: value}) == "malformed_signature"


def test_nonces_are_forgotten_only_after_twice_the_window() -> None:
    clock = Clock()
    v = verifier(window=60, clock=clock)
    headers = signed()
    assert code_of(v, headers) == "ok"
    clock.now += 60
    assert code_of(v, headers) == "replayed_nonce", "the timestamp is still acceptable, so must the nonce be known"
    clock.now += 61
    assert len(v.nonces) == 1 and code_of(v, signed(at=clock.now)) == "ok" and len(v.nonces) == 1


def test_a_full_nonce_store_refuses_rather_than_forgets() -> None:
    clock = Clock()
    store = NonceStore(ttl=10, capacity=2, clock=clock)
    assert store.add("a") and store.add("b")
    assert store.add("c") is None and store.add("a") is False
    clock.now += 10
    assert store.add("c") is True and len(store) == 1


def test_signature_headers_only_for_hmac_clusters() -> None:
    base = ClusterConfig(name="c", endpoint=Url.parse("https://gw.example.com/llama"), cost_per_hour=1.0)
    hmac_cluster = replace(base, auth_type="hmac", shared_secret=Secret(SECRET))
    assert cluster_signature_headers(base, "POST", PATH, BODY) == []
    assert cluster_signature_headers(None, "POST", PATH, BODY) == []
    headers = dict(cluster_signature_headers(hmac_cluster, "POST", PATH, BODY))
    assert HmacVerifier(SECRET, 60, 10).check("POST", PATH, headers, BODY) is None
    assert SECRET not in str(headers)


def test_poller_requests_are_signed_for_the_full_path_and_use_the_cluster_tls(dev_certs: Certs) -> None:  # noqa: F811
    tls = ClusterTls(dev_certs["ca.crt"], dev_certs["cluster-client.crt"], dev_certs["cluster-client.key"])
    cluster = ClusterConfig(
        name="c",
        endpoint=Url.parse("https://127.0.0.1:9443/llama"),
        cost_per_hour=1.0,
        auth_type="hmac",
        shared_secret=Secret(SECRET),
        tls=tls,
    )
    options = request_options(cluster, "/metrics")
    assert HmacVerifier(SECRET, 60, 10).check("GET", "/llama/metrics", options["headers"], b"") is None
    assert options["ssl"] is request_options(cluster, "/health")["ssl"], "one TLS context per cluster"
    plain = ClusterConfig(name="p", endpoint=Url.parse("http://127.0.0.1:1"), cost_per_hour=1.0)
    assert request_options(plain, "/health") == {}


def _check_request(headers: dict[str, str], body: bytes) -> authz.CheckRequest:
    request = authz.CheckRequest()
    http = request.attributes.request.http
    http.method, http.path, http.raw_body = "POST", PATH, body
    http.headers.update(headers)
    return request


async def _check(servicer: SignatureAuthorization, headers: dict[str, str], body: bytes) -> authz.CheckResponse:
    return await servicer.Check(_check_request(headers, body), None)  # type: ignore[arg-type]


def _servicer() -> tuple[SignatureAuthorization, Counter]:
    checks = Counter("checks", "", ["result"], registry=CollectorRegistry())
    return SignatureAuthorization(HmacVerifier(SECRET, 60, 100), checks), checks


async def test_authz_allows_a_signed_request_and_strips_the_signature() -> None:
    servicer, checks = _servicer()
    response = await _check(servicer, dict(sign_request(SECRET, "POST", PATH, BODY)), BODY)
    assert response.status.code == code_pb2.OK
    assert set(response.ok_response.headers_to_remove) == set(SIGNATURE_HEADERS)
    assert checks.labels("ok")._value.get() == 1


async def test_authz_denies_with_an_openai_shaped_401_in_header_value_not_raw_value() -> None:
    servicer, checks = _servicer()
    response = await _check(servicer, dict(sign_request(SECRET, "POST", PATH, BODY)), BODY + b"tampered")
    assert response.status.code == code_pb2.UNAUTHENTICATED
    denied = response.denied_response
    assert denied.status.code == 401
    (content_type,) = denied.headers
    assert (content_type.header.key, content_type.header.value, content_type.header.raw_value) == (
        "content-type",
        "application/json",
        b"",
    )
    error = orjson.loads(denied.body)["error"]
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_signature")
    assert SECRET not in denied.body
    assert checks.labels("invalid_signature")._value.get() == 1
