"""Envoy TLS transport sockets: the listener's (edge TLS, optional client certificates) and a cluster's."""

from __future__ import annotations

from typing import Any

from extproc.config.model import Url
from extproc.envoy_config.addresses import is_ip
from extproc.security.tls_config import ClusterTls, ServerTls

SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_TLS_SOCKET = "envoy.transport_sockets.tls"
_TYPES = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."


def listener_tls(tls: ServerTls | None) -> dict[str, Any]:
    """The filter chain's `transport_socket` (merge into the chain), or nothing for plain HTTP."""
    if tls is None:
        return {}
    common: dict[str, Any] = {
        "tls_certificates": [_certificate(tls.cert_file, tls.key_file)],
        "alpn_protocols": ["h2", "http/1.1"],
    }
    if tls.client_ca_file:
        common["validation_context"] = {"trusted_ca": {"filename": tls.client_ca_file}}
    context = {
        "@type": _TYPES + "DownstreamTlsContext",
        "common_tls_context": common,
        "require_client_certificate": tls.require_client_certificate,
    }
    return {"transport_socket": {"name": _TLS_SOCKET, "typed_config": context}}


def upstream_tls(url: Url, tls: ClusterTls | None = None) -> dict[str, Any]:
    """A cluster's `transport_socket`: verify the server (its CA, its name), present a certificate if set."""
    ip = is_ip(url.host)
    common: dict[str, Any] = {
        "validation_context": {
            "trusted_ca": {"filename": (tls and tls.ca_file) or SYSTEM_CA_BUNDLE},
            "match_typed_subject_alt_names": [
                {"san_type": "IP_ADDRESS" if ip else "DNS", "matcher": {"exact": url.host}}
            ],
        }
    }
    if tls is not None and tls.cert_file and tls.key_file:
        common["tls_certificates"] = [_certificate(tls.cert_file, tls.key_file)]
    context: dict[str, Any] = {"@type": _TYPES + "UpstreamTlsContext", "common_tls_context": common}
    if not ip:  # SNI carries host names only
        context["sni"] = url.host
    return {"name": _TLS_SOCKET, "typed_config": context}


def _certificate(cert_file: str, key_file: str) -> dict[str, Any]:
    return {"certificate_chain": {"filename": cert_file}, "private_key": {"filename": key_file}}
