"""Security end to end, through real Envoy on both sides, real certificates and a real llama.cpp server.

router stack (`llm-router up`, TLS listener) -> cluster-side Envoy (TLS; ext_authz -> `serve --role
cluster-gateway` for HMAC, or client certificates for mTLS) -> llama.cpp. Forged requests go straight to the
cluster-side Envoy.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from extproc.local.llama_server import LlamaServer
from extproc.security.signing import sign_request
from tests.cluster_helpers import TINY, external_cluster, llama_servers
from tests.security_helpers import (
    CLUSTER_SECRET,
    Certs,
    RunningGateway,
    dev_certs,  # noqa: F401
    foreign_certs,  # noqa: F401
    gateway_document,
    run_gateway,
)
from tests.stack_runner import RunningStack, run_stack, stack_document

CHAT = "/v1/chat/completions"
HI = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
BODY = orjson.dumps({**HI, "model": "tiny-llama"})
ENV = {"CLUSTER_SECRET": CLUSTER_SECRET}
WINDOW = 30


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    with llama_servers(TINY, tmp_path_factory.mktemp("llama"), 1, parallel=2) as (server,):
        yield server


@pytest.fixture(scope="module")
def hmac_gateway(
    dev_certs: Certs,  # noqa: F811
    llama: LlamaServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningGateway]:
    """TLS (server certificate only) and HMAC signatures checked by the verifier."""
    document = gateway_document(
        llama.base_url,
        dev_certs.pair("cluster-server"),
        sharedSecret="${CLUSTER_SECRET}",
        signatureWindow=f"{WINDOW}s",
    )
    with run_gateway(document, tmp_path_factory.mktemp("hmac-gateway"), ENV) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def mtls_gateway(
    dev_certs: Certs,  # noqa: F811
    llama: LlamaServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningGateway]:
    """Client certificates from the CA required; no signatures (Envoy alone)."""
    tls = {**dev_certs.pair("cluster-server"), "clientCaFile": dev_certs["ca.crt"], "requireClientCertificate": True}
    with run_gateway(gateway_document(llama.base_url, tls), tmp_path_factory.mktemp("mtls-gateway"), {}) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def signed_stack(
    dev_certs: Certs,  # noqa: F811
    llama: LlamaServer,
    hmac_gateway: RunningGateway,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningStack]:
    """The router over TLS (no client certificates) with one HMAC cluster behind the gateway."""
    cluster = external_cluster(
        "signed-aws",
        llama,
        0.1,
        endpoint=f"https://127.0.0.1:{hmac_gateway.port}",
        authType="hmac",
        sharedSecret="${CLUSTER_SECRET}",
        tls={"caFile": dev_certs["ca.crt"]},
    )
    document = stack_document([cluster])
    document["server"]["tls"] = dev_certs.pair("server")
    with run_stack(document, tmp_path_factory.mktemp("signed-stack"), ENV, dev_certs.context()) as stack:
        yield stack


@pytest.fixture(scope="module")
def mutual_stack(
    dev_certs: Certs,  # noqa: F811
    llama: LlamaServer,
    mtls_gateway: RunningGateway,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningStack]:
    """The router requiring client certificates, with one mTLS cluster behind the gateway (by host name)."""
    cluster = external_cluster(
        "mutual-gcp",
        llama,
        0.1,
        endpoint=f"https://localhost:{mtls_gateway.port}",
        authType="mtls",
        tls={"caFile": dev_certs["ca.crt"], **dev_certs.pair("cluster-client")},
    )
    document = stack_document([cluster])
    document["server"]["tls"] = {
        **dev_certs.pair("server"),
        "clientCaFile": dev_certs["ca.crt"],
        "requireClientCertificate": True,
    }
    with run_stack(document, tmp_path_factory.mktemp("mutual-stack"), {}, dev_certs.context("client")) as stack:
        yield stack


def to_gateway(
    gateway: RunningGateway,
    context: ssl.SSLContext,
    headers: Iterable[tuple[str, str]] = (),
    *,
    method: str = "POST",
    path: str = CHAT,
    body: bytes = BODY,
) -> httpx.Response:
    """A request straight to the cluster-side Envoy, bypassing the router."""
    with httpx.Client(verify=context, timeout=60) as client:
        return client.request(
            method,
            f"https://127.0.0.1:{gateway.port}{path}",
            content=body if method == "POST" else None,
            headers={"content-type": "application/json", **dict(headers)},
        )


def assert_refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("authentication_error", code)
    assert CLUSTER_SECRET not in response.text


def handshake_fails(url: str, context: ssl.SSLContext | bool) -> bool:
    """True when the TLS connection is refused (at the handshake, or right after it for TLS 1.3)."""
    try:
        httpx.get(url, verify=context, timeout=10)
    except httpx.TransportError:
        return True
    return False


# -- edge TLS ------------------------------------------------------------------------------------------------


def test_tls_listener_serves_clients_that_trust_the_ca(signed_stack: RunningStack, dev_certs: Certs) -> None:  # noqa: F811
    assert signed_stack.url.startswith("https://")
    response = httpx.get(f"{signed_stack.url}/health", verify=dev_certs.context(), timeout=10)
    assert response.status_code == 200 and response.http_version in ("HTTP/1.1", "HTTP/2")
    assert handshake_fails(f"{signed_stack.url}/health", True), "a client without the CA must not trust it"
    plain = signed_stack.url.replace("https://", "http://")
    assert handshake_fails(f"{plain}/health", False), "the listener speaks only TLS"


def test_listener_requiring_client_certificates_admits_only_the_cas(
    mutual_stack: RunningStack,
    dev_certs: Certs,  # noqa: F811
    foreign_certs: Certs,  # noqa: F811
) -> None:
    url = f"{mutual_stack.url}/health"
    assert handshake_fails(url, dev_certs.context()), "no client certificate"
    foreign = ssl.create_default_context(cafile=dev_certs["ca.crt"])
    foreign.load_cert_chain(foreign_certs["client.crt"], foreign_certs["client.key"])
    assert handshake_fails(url, foreign), "a certificate from another CA"
    assert httpx.get(url, verify=dev_certs.context("client"), timeout=10).status_code == 200


# -- HMAC to clusters ----------------------------------------------------------------------------------------


def test_request_to_an_hmac_cluster_is_signed_and_passes_the_verifier(
    signed_stack: RunningStack,
    hmac_gateway: RunningGateway,
    dev_certs: Certs,  # noqa: F811
) -> None:
    before = hmac_gateway.checks("ok")
    response = httpx.post(f"{signed_stack.url}{CHAT}", json=HI, verify=dev_certs.context(), timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-router-target"] == "signed-aws"
    assert response.json()["usage"]["completion_tokens"] > 0
    assert hmac_gateway.checks("ok") > before


def test_unsigned_request_is_refused_at_the_cluster(hmac_gateway: RunningGateway, dev_certs: Certs) -> None:  # noqa: F811
    assert_refused(to_gateway(hmac_gateway, dev_certs.context()), "missing_signature")


def test_tampered_body_is_refused_at_the_cluster(hmac_gateway: RunningGateway, dev_certs: Certs) -> None:  # noqa: F811
    headers = sign_request(CLUSTER_SECRET, "POST", CHAT, BODY)
    tampered = BODY.replace(b'"max_tokens":2', b'"max_tokens":9')
    assert tampered != BODY
    assert_refused(to_gateway(hmac_gateway, dev_certs.context(), headers, body=tampered), "invalid_signature")


def test_stale_timestamp_is_refused_at_the_cluster(hmac_gateway: RunningGateway, dev_certs: Certs) -> None:  # noqa: F811
    headers = sign_request(CLUSTER_SECRET, "POST", CHAT, BODY, now=time.time() - 4 * WINDOW)
    assert_refused(to_gateway(hmac_gateway, dev_certs.context(), headers), "stale_timestamp")


def test_replayed_nonce_is_refused_at_the_cluster(hmac_gateway: RunningGateway, dev_certs: Certs) -> None:  # noqa: F811
    headers = sign_request(CLUSTER_SECRET, "POST", CHAT, BODY)
    first = to_gateway(hmac_gateway, dev_certs.context(), headers)
    assert first.status_code == 200, first.text
    assert_refused(to_gateway(hmac_gateway, dev_certs.context(), headers), "replayed_nonce")


def test_only_the_public_health_path_passes_unsigned(hmac_gateway: RunningGateway, dev_certs: Certs) -> None:  # noqa: F811
    context = dev_certs.context()
    assert to_gateway(hmac_gateway, context, method="GET", path="/health").status_code == 200
    assert_refused(to_gateway(hmac_gateway, context, method="GET", path="/metrics"), "missing_signature")
    signed = sign_request(CLUSTER_SECRET, "GET", "/metrics", b"")
    response = to_gateway(hmac_gateway, context, signed, method="GET", path="/metrics")
    assert response.status_code == 200 and "llamacpp:" in response.text


def test_the_cluster_secret_appears_in_no_file_log_or_metric(
    signed_stack: RunningStack,
    hmac_gateway: RunningGateway,
    dev_certs: Certs,  # noqa: F811
) -> None:
    metrics = httpx.get(f"{signed_stack.url}/metrics", verify=dev_certs.context(), timeout=10).text
    assert CLUSTER_SECRET not in metrics
    assert CLUSTER_SECRET not in httpx.get(f"{hmac_gateway.verifier_url}/metrics", timeout=10).text
    workdirs = [Path(signed_stack.process.log_path).parent, hmac_gateway.workdir]
    files = [p for d in workdirs for p in d.rglob("*") if p.is_file() and p.stat().st_size < 2**24]
    assert any(p.name == "envoy.yaml" for p in files) and any(p.name == "up.log" for p in files)
    assert [p for p in files if CLUSTER_SECRET.encode() in p.read_bytes()] == []


# -- mTLS to clusters ----------------------------------------------------------------------------------------


def test_mtls_cluster_admits_only_clients_with_a_certificate_from_the_ca(
    mtls_gateway: RunningGateway,
    dev_certs: Certs,  # noqa: F811
    foreign_certs: Certs,  # noqa: F811
) -> None:
    url = f"https://127.0.0.1:{mtls_gateway.port}/v1/models"
    assert handshake_fails(url, dev_certs.context()), "no client certificate"
    foreign = ssl.create_default_context(cafile=dev_certs["ca.crt"])
    foreign.load_cert_chain(foreign_certs["cluster-client.crt"], foreign_certs["cluster-client.key"])
    assert handshake_fails(url, foreign), "a certificate from another CA"
    response = httpx.get(url, verify=dev_certs.context("cluster-client"), timeout=10)
    assert response.status_code == 200 and response.json()["data"][0]["id"] == "tiny-llama"


def test_router_reaches_the_mtls_cluster_with_its_client_certificate(
    mutual_stack: RunningStack,
    dev_certs: Certs,  # noqa: F811
) -> None:
    response = httpx.post(f"{mutual_stack.url}{CHAT}", json=HI, verify=dev_certs.context("client"), timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-router-target"] == "mutual-gcp"
    assert response.json()["usage"]["completion_tokens"] > 0
