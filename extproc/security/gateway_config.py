"""The cluster gateway's YAML: Envoy in front of one llama.cpp server, with the verifier as its ext_authz.

```yaml
server:                 # the router's server keys: port (Envoy listener), envoyAdminPort, grpcPort (verifier
  port: 8443            # ext_authz), httpPort (verifier /health, /metrics), controllerHost, controllerBindHost,
  tls: {certFile: cluster-server.crt, keyFile: cluster-server.key,        # maxRequestBytes, requestTimeout, tls
        clientCaFile: ca.crt, requireClientCertificate: true}
upstream: http://127.0.0.1:8080            # the llama.cpp server
sharedSecret: ${LLM_CLUSTER_SHARED_SECRET} # or sharedSecretFile; without one, no signature check (mTLS only)
signatureWindow: 60s                       # accepted clock difference, either way
maxNonces: 100000                          # replay protection: nonces remembered at once
publicPaths: [/health]                     # GETs passed unsigned (Envoy's active health check)
```
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from extproc.config.expand import expand
from extproc.config.loader import ConfigError, _check_ports, _secret, _server, _url
from extproc.config.model import Secret, ServerConfig, Url
from extproc.config.reader import Problems, Reader

DEFAULT_PUBLIC_PATHS = ("/health",)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    server: ServerConfig
    upstream: Url
    shared_secret: Secret | None = None
    signature_window: float = 60.0
    max_nonces: int = 100_000
    public_paths: tuple[str, ...] = DEFAULT_PUBLIC_PATHS


def load_gateway_config(path: str | Path, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, expand and validate a gateway file; raises ConfigError listing every problem."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from exc
    return parse_gateway_config(document, env)


def parse_gateway_config(document: Any, env: Mapping[str, str] | None = None) -> GatewayConfig:
    expanded, unset = expand(document, os.environ if env is None else env)
    problems = Problems(str(u) for u in unset)
    r = Reader(expanded, "", problems)
    d = GatewayConfig(ServerConfig(), Url("http", "localhost", 80, ""))
    server = _server(r.section("server"))
    config = GatewayConfig(
        server=server,
        upstream=_url(r, "upstream") or d.upstream,
        shared_secret=_secret(r, "sharedSecret"),
        signature_window=r.duration("signatureWindow", d.signature_window),
        max_nonces=r.integer("maxNonces", d.max_nonces, minimum=1),
        public_paths=r.strings("publicPaths") if r.has("publicPaths") else d.public_paths,
    )
    if config.signature_window <= 0:
        problems.add("signatureWindow", "must be longer than 0s")
    for path in config.public_paths:
        if not path.startswith("/"):
            problems.add("publicPaths", f"{path!r} must start with /")
    r.finish()
    _check_ports(server, problems)
    if problems:
        raise ConfigError(list(problems))
    return config
