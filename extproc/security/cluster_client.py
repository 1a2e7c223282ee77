"""How the controller's own HTTP client (the cluster poller) reaches a cluster: its TLS files, signed requests."""

from __future__ import annotations

import functools
import ssl
from typing import Any

from extproc.config.model import ClusterConfig
from extproc.security.signing import cluster_signature_headers
from extproc.security.tls_config import ClusterTls


def request_options(cluster: ClusterConfig, path: str) -> dict[str, Any]:
    """aiohttp keywords for a GET of `path` under the cluster's endpoint: TLS context, signature."""
    options: dict[str, Any] = {}
    if cluster.tls is not None:
        options["ssl"] = _ssl_context(cluster.tls)
    headers = cluster_signature_headers(cluster, "GET", cluster.endpoint.path + path, b"")
    if headers:
        options["headers"] = dict(headers)
    return options


@functools.cache
def _ssl_context(tls: ClusterTls) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context
