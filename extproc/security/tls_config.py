"""TLS settings of the router's listener (`server.tls`) and of a cluster connection (`clusters[].tls`).

Certificates and keys are referenced by path: Envoy reads the files itself, nothing is inlined in its config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from extproc.config.reader import Reader


@dataclass(frozen=True, slots=True)
class ServerTls:
    """A listener's certificate, and the CA its clients' certificates must come from."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    require_client_certificate: bool = False


@dataclass(frozen=True, slots=True)
class ClusterTls:
    """How the router connects to a cluster over TLS: the CA it trusts, and the certificate it presents."""

    ca_file: str | None = None  # default: the system CA bundle
    cert_file: str | None = None
    key_file: str | None = None


def server_tls(parent: Reader) -> ServerTls | None:
    """`tls` of a server section: certFile and keyFile, optional clientCaFile and requireClientCertificate."""
    if not parent.has("tls"):
        parent.raw("tls")
        return None
    r = parent.section("tls")
    cert, key = _pem(r, "certFile", required=True), _pem(r, "keyFile", required=True)
    client_ca = _pem(r, "clientCaFile")
    require = r.boolean("requireClientCertificate", False)
    if require and not r.has("clientCaFile"):
        r.problems.add(r.at("clientCaFile"), "is required when requireClientCertificate is true")
    r.finish()
    return ServerTls(cert or "", key or "", client_ca, require)


def cluster_tls(parent: Reader, auth_type: str, https: bool) -> ClusterTls | None:
    """`tls` of a cluster: caFile, certFile + keyFile (both, required when authType is mtls)."""
    if auth_type == "mtls" and not https:
        parent.problems.add(parent.at("endpoint"), "must be an https:// URL when authType is mtls")
    if not parent.has("tls"):
        parent.raw("tls")
        if auth_type == "mtls":
            parent.problems.add(parent.at("tls"), "certFile and keyFile are required when authType is mtls")
        return None
    r = parent.section("tls")
    has_cert, has_key = r.has("certFile"), r.has("keyFile")
    if has_cert != has_key:
        r.problems.add(r.path, "give both certFile and keyFile, or neither")
    elif auth_type == "mtls" and not has_cert:
        r.problems.add(r.path, "certFile and keyFile are required when authType is mtls")
    tls = ClusterTls(_pem(r, "caFile"), _pem(r, "certFile"), _pem(r, "keyFile"))
    if not https:
        r.problems.add(r.path, "needs an https:// endpoint")
    r.finish()
    return tls


def _pem(r: Reader, key: str, *, required: bool = False) -> str | None:
    """An absolute path to a readable PEM file, or None (with the problem recorded)."""
    path = r.string(key, required=required)
    if path is None:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        r.problems.add(r.at(key), f"cannot read ({exc.strerror})")
        return None
    if b"-----BEGIN " not in data:
        r.problems.add(r.at(key), "is not a PEM file")
        return None
    return os.path.abspath(path)
