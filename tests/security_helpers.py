"""What the security tests share: development certificates, TLS client contexts, and the cluster gateway
(cluster-side Envoy + `llm-router serve --role cluster-gateway`) run on free ports."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from extproc.local.envoy_process import EnvoyProcess
from extproc.local.llama_server import free_port
from extproc.local.process import ManagedProcess
from extproc.security.certs import write_dev_certs

CLUSTER_SECRET = "hmac-cluster-secret-5b7e"  # distinctive, so leaks are easy to spot
STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Certs:
    dir: Path

    def __getitem__(self, stem: str) -> str:
        """`certs["server.crt"]`: the absolute path of one file."""
        return str(self.dir / stem)

    def pair(self, stem: str) -> dict[str, str]:
        return {"certFile": self[f"{stem}.crt"], "keyFile": self[f"{stem}.key"]}

    def context(self, client: str | None = None) -> ssl.SSLContext:
        """A client context trusting this CA, presenting the `client` certificate if given."""
        context = ssl.create_default_context(cafile=self["ca.crt"])
        if client:
            context.load_cert_chain(self[f"{client}.crt"], self[f"{client}.key"])
        return context


@pytest.fixture(scope="session")
def dev_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    out = tmp_path_factory.mktemp("certs")
    write_dev_certs(out)
    return Certs(out)


@pytest.fixture(scope="session")
def foreign_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Another CA's certificates: valid, but not trusted by anything under test."""
    out = tmp_path_factory.mktemp("foreign-certs")
    write_dev_certs(out)
    return Certs(out)


def gateway_document(upstream: str, tls: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    server: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": free_port(),
        "envoyAdminPort": free_port(),
        "grpcPort": free_port(),
        "httpPort": free_port(),
    }
    if tls:
        server["tls"] = tls
    return {"server": server, "upstream": upstream, **extra}


@dataclass
class RunningGateway:
    document: dict[str, Any]
    workdir: Path

    @property
    def port(self) -> int:
        return int(self.document["server"]["port"])

    @property
    def verifier_url(self) -> str:
        return f"http://127.0.0.1:{self.document['server']['httpPort']}"

    def checks(self, result: str) -> float:
        """How many signature checks the verifier answered with `result` (ok or a rejection code)."""
        text = httpx.get(f"{self.verifier_url}/metrics", timeout=10).text
        prefix = f'llm_router_gateway_checks_total{{result="{result}"}} '
        return sum(float(line.removeprefix(prefix)) for line in text.splitlines() if line.startswith(prefix))

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.workdir.glob("*.log"))


@contextmanager
def run_gateway(document: dict[str, Any], workdir: Path, env: dict[str, str]) -> Iterator[RunningGateway]:
    """The cluster-side Envoy rendered by `envoy-config --role cluster-gateway`, and the verifier if it signs."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "gateway.yaml"
    config.write_text(yaml.safe_dump(document))
    bootstrap = workdir / "envoy.yaml"
    child_env = {**os.environ, **env}
    cli = [sys.executable, "-m", "extproc.cli"]
    role = ["--role", "cluster-gateway", "--config", str(config)]
    subprocess.run([*cli, "envoy-config", *role, "-o", str(bootstrap)], check=True, env=child_env)
    server = document["server"]
    envoy = EnvoyProcess(bootstrap, server["envoyAdminPort"], workdir / "envoy.log")
    verifier = ManagedProcess("verifier", workdir / "verifier.log")
    try:
        if "sharedSecret" in document:
            verifier.launch([*cli, "serve", *role], env=child_env)
            asyncio.run(verifier.wait_http_ready(f"http://127.0.0.1:{server['httpPort']}/health", STARTUP_TIMEOUT))
        envoy.start()
        asyncio.run(envoy.wait_ready(STARTUP_TIMEOUT))
        yield RunningGateway(document, workdir)
    finally:
        envoy.stop()
        verifier.stop()
