"""Istio EnvoyFilter patches for the llm-router chart's mesh mode, derived from the rendered Envoy bootstrap.

Everything the standalone Envoy gets from `llm-router envoy-config` is carried over, so mesh mode routes
exactly like gateway mode: the HTTP filters (inserted before the router, disabled except on the chat route),
the chat route(s) (first in the configured virtual host), the virtual host's settings, and every target and
chain cluster. References to the controller's gRPC cluster become Istio's outbound cluster of the chart's
controller Service; the controller's admin routes are left out (the Service serves them).

Input: the chart's rendered ConfigMap (`helm template ... --show-only templates/configmap.yaml`). Output: a
values file for the chart (`mesh.generated`), stamped with the SHA-256 of the router config it was made from;
the chart refuses to render mesh mode when the config has changed since.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

HCM = "envoy.filters.network.http_connection_manager"
ROUTER = "envoy.filters.http.router"
# A filter inserted with `disabled: true` runs on a route that carries any per-route config for it.
ENABLING_ROUTE_CONFIG = {
    "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute",
        "overrides": {},
    },
}
SECRET_KEYS = ("apiKey", "sharedSecret")
PLACEHOLDER = "placeholder-not-rendered"


class _AssumeSet(Mapping[str, str]):
    """The environment, where every unset variable reads as a placeholder (secrets never reach Envoy)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __getitem__(self, key: str) -> str:
        return self._env.get(key, PLACEHOLDER)

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def read_configmap(stream: str) -> tuple[dict[str, Any], str]:
    """The chart's router ConfigMap (metadata, router.yaml text) from `helm template` output."""
    for document in yaml.safe_load_all(stream):
        if isinstance(document, dict) and document.get("kind") == "ConfigMap":
            text = (document.get("data") or {}).get("router.yaml")
            if text is not None:
                return document["metadata"], text
    raise SystemExit("no ConfigMap with a router.yaml key in the input")


def env_references_outside_secrets(node: Any, path: str = "") -> list[str]:
    """Key paths that use ${VAR} for anything but a secret: they could differ between generation and runtime."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in env_references_outside_secrets(v, f"{path}.{k}".lstrip("."))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in env_references_outside_secrets(v, f"{path}[{i}]")]
    if isinstance(node, str) and "${" in node and not path.endswith(SECRET_KEYS):
        return [path]
    return []


def _rename_cluster(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {k: (new if k == "cluster_name" and v == old else _rename_cluster(v, old, new)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_cluster(v, old, new) for v in node]
    return node


def _enabling_route_config(http_filter: dict[str, Any]) -> dict[str, Any]:
    kind = http_filter["typed_config"]["@type"]
    if kind not in ENABLING_ROUTE_CONFIG:
        raise SystemExit(f"no per-route config known to enable {http_filter['name']} ({kind}): add it here")
    return copy.deepcopy(ENABLING_ROUTE_CONFIG[kind])


def config_patches(
    router_yaml: str, *, controller_cluster: str, context: str, virtual_host: str, env: Mapping[str, str]
) -> list[dict[str, Any]]:
    """EnvoyFilter configPatches equivalent to the bootstrap rendered for this router config."""
    from extproc.config.loader import parse_config_text
    from extproc.envoy_config.bootstrap import render_bootstrap
    from extproc.envoy_config.names import CONTROLLER_GRPC, CONTROLLER_HTTP

    bootstrap = render_bootstrap(parse_config_text(router_yaml, _AssumeSet(env), source="router.yaml"))
    bootstrap = _rename_cluster(bootstrap, CONTROLLER_GRPC, controller_cluster)
    (listener,) = bootstrap["static_resources"]["listeners"]
    hcm = next(f for chain in listener["filter_chains"] for f in chain["filters"] if f["name"] == HCM)
    manager = hcm["typed_config"]
    filters = [f for f in manager["http_filters"] if f["name"] != ROUTER]
    (vhost,) = manager["route_config"]["virtual_hosts"]

    listener_match = {
        "context": context,
        "listener": {"filterChain": {"filter": {"name": HCM, "subFilter": {"name": ROUTER}}}},
    }
    vhost_match = {"context": context, "routeConfiguration": {"vhost": {"name": virtual_host}}}
    patches: list[dict[str, Any]] = [
        {
            "applyTo": "HTTP_FILTER",
            "match": copy.deepcopy(listener_match),
            "patch": {"operation": "INSERT_BEFORE", "value": {**f, "disabled": True}},
        }
        for f in filters
    ]
    enable = {f["name"]: _enabling_route_config(f) for f in filters}
    routes = [r for r in vhost["routes"] if "cluster_header" in r.get("route", {})]
    for index, route in reversed(list(enumerate(routes))):
        value = {
            "name": f"llm-router-{index}",
            **route,
            "typed_per_filter_config": {**route.get("typed_per_filter_config", {}), **enable},
        }
        patches.append(
            {
                "applyTo": "HTTP_ROUTE",
                "match": copy.deepcopy(vhost_match),
                "patch": {"operation": "INSERT_FIRST", "value": value},
            }
        )
    settings = {k: v for k, v in vhost.items() if k not in ("name", "domains", "routes")}
    if settings:
        patches.append(
            {
                "applyTo": "VIRTUAL_HOST",
                "match": copy.deepcopy(vhost_match),
                "patch": {"operation": "MERGE", "value": settings},
            }
        )
    patches += [
        {"applyTo": "CLUSTER", "match": {"context": context}, "patch": {"operation": "ADD", "value": cluster}}
        for cluster in bootstrap["static_resources"]["clusters"]
        if cluster["name"] not in (controller_cluster, CONTROLLER_GRPC, CONTROLLER_HTTP)
    ]
    return patches


def generated_values(
    configmap: dict[str, Any],
    router_yaml: str,
    *,
    grpc_port: int,
    context: str,
    virtual_host: str,
    env: Mapping[str, str],
) -> dict[str, Any]:
    """The chart values `mesh.generated` for a rendered ConfigMap (its name is `<fullname>-config`)."""
    name = configmap["name"].removesuffix("-config")
    cluster = f"outbound|{grpc_port}||{name}.{configmap['namespace']}.svc.cluster.local"
    patches = config_patches(
        router_yaml, controller_cluster=cluster, context=context, virtual_host=virtual_host, env=env
    )
    digest = hashlib.sha256(router_yaml.encode()).hexdigest()
    return {"mesh": {"generated": {"configSha256": digest, "configPatches": patches}}}


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configmap", type=Path, default=Path("-"), help="helm template output (default: stdin)")
    parser.add_argument("--context", default="GATEWAY", help="the chart's mesh.context")
    parser.add_argument("--virtual-host", required=True, help="the chart's mesh.virtualHost")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    args = parser.parse_args(argv)
    stream = sys.stdin.read() if str(args.configmap) == "-" else args.configmap.read_text()
    metadata, router_yaml = read_configmap(stream)
    document = yaml.safe_load(router_yaml)
    risky = env_references_outside_secrets(document)
    if risky:
        print(f"only secrets may use ${{VAR}} in mesh mode (found at {', '.join(risky)})", file=sys.stderr)
        return 1
    grpc_port = int((document.get("server") or {}).get("grpcPort", 50051))
    values = generated_values(
        metadata, router_yaml, grpc_port=grpc_port, context=args.context, virtual_host=args.virtual_host, env=os.environ
    )
    text = "# Generated by docker/mesh_patches.py: do not edit, re-run it when the router config changes.\n"
    text += yaml.safe_dump(values, sort_keys=False)
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
