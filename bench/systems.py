"""The processes under test: fake upstreams, Envoy variants, the minimal ext_proc, the controller, LiteLLM.

Every server is a child process on free ports, started and stopped by the harness. Envoy's bootstraps all
derive from the product's own rendering (`llm-router envoy-config`), so listener, routes, access log and
cluster settings are identical; only the ext_proc filter differs between the Envoy variants.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench.payloads import CHAT_REQUEST_BYTES, COMPLETION_BYTES, UPSTREAM_MODEL
from bench.procstat import Watched
from extproc.local.envoy_process import EnvoyProcess
from extproc.local.llama_server import free_port
from extproc.local.process import ManagedProcess

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
EXT_PROC_FILTER = "envoy.filters.http.ext_proc"
PRIMARY_CLUSTER = "bench-aws"  # the cluster the hybrid strategy picks for the benchmark's chat request
BASELINE_CLUSTER = "bench_upstream"  # the one upstream cluster of the Envoy-alone and minimal bootstraps
PROVIDER_KEY = "sk-bench-provider-key"


# -- readiness -----------------------------------------------------------------------------------------


def wait_http(
    url: str, process: ManagedProcess, timeout: float, method: str = "GET", body: bytes | None = None
) -> None:
    """Poll `url` until it answers 200; raise with the process's log tail if it dies or time runs out."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not process.running:
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        request = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}: {error.read()[:300]!r}"
        except (urllib.error.URLError, OSError) as error:
            last = str(error)
        time.sleep(0.05)
    raise TimeoutError(f"{process.name}: {url} not ready after {timeout}s ({last}):\n{process.log_tail()}")


def post_ok(url: str, body: bytes, timeout: float = 10.0) -> bytes:
    request = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if response.status != 200:
            raise RuntimeError(f"POST {url} answered {response.status}")
        return response.read()


@contextmanager
def managed(name: str, command: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[ManagedProcess]:
    process = ManagedProcess(name, log)
    process.launch(command, env=env)
    try:
        yield process
    finally:
        process.stop(grace=10)


# -- fake upstreams ------------------------------------------------------------------------------------

NGINX_CONF = """
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {workdir}/nginx-tmp/body;
  proxy_temp_path {workdir}/nginx-tmp/proxy;
  fastcgi_temp_path {workdir}/nginx-tmp/fastcgi;
  uwsgi_temp_path {workdir}/nginx-tmp/uwsgi;
  scgi_temp_path {workdir}/nginx-tmp/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_max_body_size 64m;
  server {{
    listen 127.0.0.1:{port};
    location = /health {{ default_type application/json; return 200 '{{"status":"ok"}}'; }}
    location = /v1/chat/completions {{ default_type application/json; return 200 '{completion}'; }}
    location / {{ default_type application/json; return 404 '{{"error":"not found"}}'; }}
  }}
}}
"""


class Upstream:
    def __init__(self, name: str, process: ManagedProcess, port: int, tree: bool) -> None:
        self.name = name
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.tree = tree

    def watched(self) -> Watched:
        assert self.process.pid is not None
        return Watched(self.name, self.process.pid, tree=self.tree)


@contextmanager
def nginx_upstream(workdir: Path) -> Iterator[Upstream]:
    """nginx with one worker answering a fixed chat.completion (with usage) and GET /health."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise FileNotFoundError("nginx not found: apt-get install nginx-light")
    workdir = workdir / "nginx"
    (workdir / "nginx-tmp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    completion = COMPLETION_BYTES.decode()
    assert "'" not in completion
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workdir=workdir, port=port, completion=completion))
    command = [binary, "-p", str(workdir), "-e", str(workdir / "nginx-error.log"), "-c", str(conf), "-g", "daemon off;"]
    with managed("nginx", command, workdir / "nginx.log") as process:
        upstream = Upstream("nginx", process, port, tree=True)
        wait_http(f"{upstream.url}/health", process, 10)
        yield upstream


@contextmanager
def sse_upstream(workdir: Path, chunks: int, delay_ms: float) -> Iterator[Upstream]:
    """The streaming fake upstream (bench/sse_upstream.py)."""
    port = free_port()
    command = [
        sys.executable,
        str(BENCH_DIR / "sse_upstream.py"),
        *("--port", str(port), "--chunks", str(chunks), "--delay-ms", str(delay_ms)),
    ]
    with managed("sse-upstream", command, workdir / "sse-upstream.log") as process:
        upstream = Upstream("sse-upstream", process, port, tree=False)
        wait_http(f"{upstream.url}/health", process, 10)
        yield upstream


# -- the router config and Envoy bootstraps --------------------------------------------------------------


def router_document(upstream_url: str) -> dict[str, Any]:
    """A product config whose every target is the fake upstream: two clusters and two OpenAI-type providers.

    Under `hybrid` the short benchmark chat goes to the cheap cluster `bench-aws`; the 1 MB prompt fits only
    the provider with a 1M-token context window (gpt-4.1-mini). Claude/Gemini targets are left out because
    the fake upstream speaks only the OpenAI format.
    """

    def cluster(name: str, cost_per_hour: float, provider: str) -> dict[str, Any]:
        return {
            "name": name,
            "endpoint": upstream_url,
            "region": "bench",
            "provider": provider,
            "costPerHour": cost_per_hour,
            "tokensPerSecond": 200,
            "model": UPSTREAM_MODEL,
            "contextWindow": 4096,
        }

    def provider(name: str, model: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "openai",
            "apiKey": PROVIDER_KEY,
            "defaultModel": model,
            "baseUrl": f"{upstream_url}/v1",
        }

    return {
        "server": {
            "port": free_port(),
            "envoyAdminPort": free_port(),
            "grpcPort": free_port(),
            "httpPort": free_port(),
            "controllerHost": "127.0.0.1",
        },
        "router": {"routingStrategy": "hybrid", "healthCheckInterval": "2s"},
        "clusters": [cluster(PRIMARY_CLUSTER, 0.0928, "aws"), cluster("bench-gcp", 0.134, "gcp")],
        "externalProviders": [provider("openai", "gpt-4o-mini"), provider("openai-long", "gpt-4.1-mini")],
    }


def render_product_bootstrap(config_path: Path, output: Path) -> dict[str, Any]:
    """`llm-router envoy-config --config FILE -o OUT`, exactly as an operator runs it."""
    subprocess.run(
        [sys.executable, "-m", "extproc.cli", "envoy-config", "--config", str(config_path), "-o", str(output)],
        check=True,
        cwd=REPO_ROOT,
    )
    return yaml.safe_load(output.read_text())


def _listener_filters(bootstrap: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return manager, manager["http_filters"]


def with_ports(bootstrap: dict[str, Any], listener_port: int, admin_port: int) -> dict[str, Any]:
    out = copy.deepcopy(bootstrap)
    out["admin"]["address"]["socket_address"]["port_value"] = admin_port
    out["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = listener_port
    return out


def plain_cluster(name: str, port: int) -> dict[str, Any]:
    """An HTTP/1.1 cluster of one endpoint on 127.0.0.1, with no upstream filters and no health checks."""
    endpoint = {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
    }


def _grpc_cluster(manager: dict[str, Any]) -> str:
    """The cluster the listener's ext_proc filter calls (the controller's gRPC port)."""
    ext_proc = next(f for f in manager["http_filters"] if f["name"] == EXT_PROC_FILTER)
    return str(ext_proc["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"])


def _baseline(product: dict[str, Any], upstream_port: int) -> dict[str, Any]:
    """The product's admin and listener (routes, access log, local replies) with only the clusters the
    listener itself names (controller gRPC and admin HTTP) plus one plain cluster to the upstream: the
    product's target clusters, and any upstream ext_proc filters on them, are left out."""
    out = copy.deepcopy(product)
    manager, _ = _listener_filters(out)
    keep = {_grpc_cluster(manager)}
    for host in manager["route_config"]["virtual_hosts"]:
        keep.update(r["route"]["cluster"] for r in host["routes"] if "cluster" in r.get("route", {}))
    out["static_resources"]["clusters"] = [
        *(c for c in out["static_resources"]["clusters"] if c["name"] in keep),
        plain_cluster(BASELINE_CLUSTER, upstream_port),
    ]
    return out


def _chat_routes(manager: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for host in manager["route_config"]["virtual_hosts"]:
        for route in host["routes"]:
            if "cluster_header" in route.get("route", {}):
                yield route


def envoy_alone_bootstrap(product: dict[str, Any], upstream_port: int) -> dict[str, Any]:
    """No ext_proc at all: the chat route goes straight to the upstream."""
    out = _baseline(product, upstream_port)
    manager, filters = _listener_filters(out)
    manager["http_filters"] = [f for f in filters if f["name"] != EXT_PROC_FILTER]
    for host in manager["route_config"]["virtual_hosts"]:
        for route in host["routes"]:
            route.pop("typed_per_filter_config", None)
    for route in _chat_routes(manager):
        del route["route"]["cluster_header"]
        route["route"]["cluster"] = BASELINE_CLUSTER
    return out


def minimal_extproc_bootstrap(product: dict[str, Any], upstream_port: int, grpc_port: int) -> dict[str, Any]:
    """The leanest routing exchange: request headers SEND + buffered body, to bench/minimal_extproc.py."""
    out = _baseline(product, upstream_port)
    manager, filters = _listener_filters(out)
    ext_procs = [f for f in filters if f["name"] == EXT_PROC_FILTER]
    if len(ext_procs) != 1:
        raise ValueError(f"expected one ext_proc filter on the listener, found {len(ext_procs)}")
    grpc_cluster = _grpc_cluster(manager)
    ext_procs[0]["typed_config"] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
        "grpc_service": {"envoy_grpc": {"cluster_name": grpc_cluster}},
        "failure_mode_allow": False,
        "message_timeout": "2s",
        "mutation_rules": {"allow_all_routing": True},
        "processing_mode": {
            "request_header_mode": "SEND",
            "request_body_mode": "BUFFERED",
            "response_header_mode": "SKIP",
            "response_body_mode": "NONE",
            "request_trailer_mode": "SKIP",
            "response_trailer_mode": "SKIP",
        },
    }
    for cluster in out["static_resources"]["clusters"]:
        if cluster["name"] == grpc_cluster:
            endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
            endpoint["address"]["socket_address"]["port_value"] = grpc_port
    return out


# -- systems under test ----------------------------------------------------------------------------------


class System:
    """A running system under test: where to send load and which processes to watch."""

    def __init__(self, name: str, url: str, watched: list[Watched], envoy_admin: str | None = None) -> None:
        self.name = name
        self.url = url  # the chat-completions URL
        self.watched = watched
        self.envoy_admin = envoy_admin  # Envoy's admin base URL, when Envoy is in the path

    def envoy_stats(self, pattern: str) -> dict[str, int]:
        """Envoy's counters whose names match the regex `pattern`, from its admin /stats."""
        assert self.envoy_admin is not None
        url = f"{self.envoy_admin}/stats?filter={urllib.parse.quote(pattern)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            lines = response.read().decode().splitlines()
        stats = {}
        for line in lines:
            key, _, value = line.partition(": ")
            if value.isdigit():
                stats[key] = int(value)
        return stats

    def envoy_counter(self, name: str) -> int:
        """One of Envoy's counters, e.g. `http.llm_router.downstream_rq_completed`."""
        stats = self.envoy_stats(f"^{re.escape(name)}$")
        if name not in stats:
            raise KeyError(name)
        return stats[name]

    def ext_proc_traffic(self) -> tuple[int, int]:
        """(gRPC streams, messages sent to the ext_proc server) so far, over all of Envoy's ext_proc filters."""
        if self.envoy_admin is None:
            return 0, 0
        stats = self.envoy_stats(r"ext_proc\.(streams_started|stream_msgs_sent)$")
        streams = sum(v for k, v in stats.items() if k.endswith(".streams_started"))
        return streams, sum(v for k, v in stats.items() if k.endswith(".stream_msgs_sent"))


@contextmanager
def envoy(workdir: Path, name: str, bootstrap: dict[str, Any]) -> Iterator[tuple[EnvoyProcess, str, str]]:
    """Envoy (the product's EnvoyProcess class) on `bootstrap`; yields it, its listener's and its admin's URLs."""
    listener_port, admin_port = free_port(), free_port()
    path = workdir / f"envoy-{name}.yaml"
    path.write_text(yaml.safe_dump(with_ports(bootstrap, listener_port, admin_port), sort_keys=False))
    process = EnvoyProcess(path, admin_port, workdir / f"envoy-{name}.log")
    process.start()
    try:
        wait_http(f"http://127.0.0.1:{admin_port}/ready", process.process, 30)
        yield process, f"http://127.0.0.1:{listener_port}", f"http://127.0.0.1:{admin_port}"
    finally:
        process.stop(grace=10)


def _envoy_watched(process: EnvoyProcess) -> Watched:
    assert process.process.pid is not None
    return Watched("envoy", process.process.pid)


@contextmanager
def envoy_alone(workdir: Path, product: dict[str, Any], upstream: Upstream) -> Iterator[System]:
    with envoy(workdir, "alone", envoy_alone_bootstrap(product, upstream.port)) as (process, base, admin):
        url = f"{base}/v1/chat/completions"
        wait_http(url, process.process, 10, "POST", CHAT_REQUEST_BYTES)
        yield System("envoy-alone", url, [_envoy_watched(process), upstream.watched()], admin)


@contextmanager
def envoy_minimal(workdir: Path, product: dict[str, Any], upstream: Upstream) -> Iterator[System]:
    port = free_port()
    command = [
        sys.executable,
        str(BENCH_DIR / "minimal_extproc.py"),
        "--port",
        str(port),
        "--cluster",
        BASELINE_CLUSTER,
    ]
    with (
        managed("minimal-extproc", command, workdir / "minimal-extproc.log") as minimal,
        envoy(workdir, "minimal", minimal_extproc_bootstrap(product, upstream.port, port)) as (process, base, admin),
    ):
        url = f"{base}/v1/chat/completions"
        wait_http(url, process.process, 15, "POST", CHAT_REQUEST_BYTES)
        assert minimal.pid is not None
        yield System(
            "envoy+minimal", url, [_envoy_watched(process), Watched("minimal", minimal.pid), upstream.watched()], admin
        )


@contextmanager
def envoy_controller(workdir: Path, upstream: Upstream, name: str = "controller", workers: int = 1) -> Iterator[System]:
    """The product: `llm-router serve [--workers N]` plus Envoy on the bootstrap `llm-router envoy-config` rendered
    (CPU and RSS of several workers summed over the supervisor's process tree)."""
    workdir = workdir / name
    workdir.mkdir(parents=True, exist_ok=True)
    document = router_document(upstream.url)
    config = workdir / "router.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    product = render_product_bootstrap(config, workdir / "envoy-product.yaml")
    http_port = document["server"]["httpPort"]
    command = [sys.executable, "-m", "extproc.cli", "--log-level", "warning", "serve", "--config", str(config)]
    command += ["--workers", str(workers)] if workers > 1 else []
    with managed("llm-router serve", command, workdir / "controller.log") as controller:
        wait_http(f"http://127.0.0.1:{http_port}/health", controller, 30)
        # The product bootstrap as rendered: only its listener and admin ports move to fresh ones.
        with envoy(workdir, "product", product) as (process, base, admin):
            url = f"{base}/v1/chat/completions"
            wait_http(url, process.process, 15, "POST", CHAT_REQUEST_BYTES)
            assert controller.pid is not None
            yield System(
                "envoy+controller" if workers == 1 else f"envoy+controller {workers}w",
                url,
                [_envoy_watched(process), Watched("controller", controller.pid, workers > 1), upstream.watched()],
                admin,
            )


def litellm_binary(explicit: str | None = None) -> Path | None:
    """LiteLLM's CLI: --litellm, $LITELLM_BIN, bench/.venv-litellm (see docs/BENCHMARKS.md), then PATH."""
    for candidate in (explicit, os.environ.get("LITELLM_BIN"), str(BENCH_DIR / ".venv-litellm" / "bin" / "litellm")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    found = shutil.which("litellm")
    return Path(found) if found else None


def litellm_document(upstream_url: str) -> dict[str, Any]:
    return {
        "model_list": [
            {
                "model_name": "gpt-4o-mini",
                "litellm_params": {
                    "model": f"openai/{UPSTREAM_MODEL}",
                    "api_base": f"{upstream_url}/v1",
                    "api_key": PROVIDER_KEY,
                },
            }
        ],
        "litellm_settings": {"telemetry": False, "drop_params": True, "set_verbose": False},
        # No client authentication, like the router's ext_proc path: LiteLLM refuses that unless told.
        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
    }


@contextmanager
def litellm(workdir: Path, upstream: Upstream, workers: int, binary: Path) -> Iterator[System]:
    """LiteLLM proxy (its default uvicorn server) with `workers` worker processes, no database, no auth."""
    workdir = workdir / f"litellm-{workers}"
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "litellm.yaml"
    config.write_text(yaml.safe_dump(litellm_document(upstream.url), sort_keys=False))
    port = free_port()
    command = [
        str(binary),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        str(workers),
    ]
    if workers > 1:
        # uvicorn's supervisor kills a worker that misses a 5 s health ping; a busy or still-importing worker on
        # a loaded 2-core machine does, and the restart loop would be measured instead of LiteLLM.
        command += ["--timeout_worker_healthcheck", "120"]
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map from GitHub at start-up
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    with managed(f"litellm-{workers}w", command, workdir / "litellm.log", env=env) as process:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health/liveliness", process, 120)
        url = f"{base}/v1/chat/completions"
        wait_http(url, process, 30, "POST", CHAT_REQUEST_BYTES)
        assert process.pid is not None
        yield System(f"litellm {workers}w", url, [Watched("litellm", process.pid, tree=True), upstream.watched()])
