"""The Helm charts, rendered by real Helm for their defaults and every documented mode (ci/*-values.yaml):
every manifest valid for Kubernetes (or its CRD), the router config they embed valid for the controller, the
Envoy configs they produce accepted by real Envoy, and the pieces wired to each other (ports, names, probes)."""

from __future__ import annotations

import copy
import functools
import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from extproc.auth.config import hash_key
from extproc.config.loader import load_config, parse_config_text
from extproc.envoy_config.names import CONTROLLER_GRPC, CONTROLLER_HTTP
from extproc.metrics import Metrics
from tests.deploy_support import (
    CHARTS,
    KUBERNETES_VERSION,
    REPO,
    chart_values,
    ci_values,
    container_ports,
    containers,
    envoy_validate,
    find,
    kinds,
    lint_chart,
    load_script,
    manifests,
    referenced_variables,
    render_chart,
    validate_manifest,
    walk,
)

mesh_patches = load_script("mesh_patches")
NAMESPACE = "llm"
CASES = [
    *(("llm-router", mode, values) for mode, values in {"default": {}, **ci_values("llm-router")}.items()),
    *(("llm-server", mode, values) for mode, values in {"default": {}, **ci_values("llm-server")}.items()),
    ("platform", "default", {}),
    ("argocd-apps", "default", {}),
]
MESH_VALUES = ci_values("llm-router")["mesh"]
GATEWAY_MODES = {mode: values for chart, mode, values in CASES if chart == "llm-router" and mode != "mesh"}
SERVER_MODES = {mode: values for chart, mode, values in CASES if chart == "llm-server"}


def _render(chart: str, values: dict[str, Any], name: str | None = None) -> list[dict[str, Any]]:
    return manifests(render_chart(chart, values, name=name or chart, namespace=NAMESPACE))


def _mesh_values(values: dict[str, Any] = MESH_VALUES) -> dict[str, Any]:
    """Mesh values plus mesh.generated, made the documented way: helm template -> docker/mesh_patches.py."""
    for_generation = copy.deepcopy(values)
    for_generation["mesh"]["generate"] = True
    rendered = render_chart("llm-router", for_generation, name="llm-router", namespace=NAMESPACE)
    result = subprocess.run(
        [sys.executable, str(REPO / "docker" / "mesh_patches.py"), "--virtual-host", values["mesh"]["virtualHost"]],
        input=rendered["llm-router/templates/configmap.yaml"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {**values, "mesh": {**values["mesh"], **yaml.safe_load(result.stdout)["mesh"]}}


@functools.cache
def _generated_mesh_values() -> dict[str, Any]:
    return _mesh_values()


def _case_values(chart: str, mode: str, values: dict[str, Any]) -> dict[str, Any]:
    """Mesh mode needs its generated patches, exactly as an install would."""
    return _generated_mesh_values() if (chart, mode) == ("llm-router", "mesh") else values


@pytest.fixture(scope="module")
def mesh_documents() -> list[dict[str, Any]]:
    return _render("llm-router", _generated_mesh_values())


# --- every chart, every mode ------------------------------------------------------------------------------


@pytest.mark.parametrize(("chart", "mode", "values"), CASES, ids=[f"{c}-{m}" for c, m, _ in CASES])
def test_chart_lints_clean(chart: str, mode: str, values: dict[str, Any]) -> None:
    report = lint_chart(chart, _case_values(chart, mode, values))
    # The platform chart's subcharts are fetched at deploy time (helm dependency build / Argo CD), not vendored.
    allowed = {"chart directory is missing these dependencies"} if chart == "platform" else set()
    errors = [e for e in report["errors"] if not any(e.startswith(a) for a in allowed)]
    warnings = [
        m for m in report["messages"] if m["severity"] >= 2 and not any(m["error"].startswith(a) for a in allowed)
    ]
    assert not errors and not warnings, report


@pytest.mark.parametrize(("chart", "mode", "values"), CASES, ids=[f"{c}-{m}" for c, m, _ in CASES])
def test_every_manifest_is_valid(chart: str, mode: str, values: dict[str, Any]) -> None:
    documents = _render(chart, _case_values(chart, mode, values))
    assert documents
    for document in documents:
        validate_manifest(document)
        if document["kind"] not in ("ClusterIssuer",):
            assert document["metadata"].get("namespace"), f"{document['kind']} has no namespace"


def test_mesh_mode_manifests_are_valid(mesh_documents: list[dict[str, Any]]) -> None:
    assert kinds(mesh_documents) == sorted(
        [
            "ConfigMap",
            "Deployment",
            "EnvoyFilter",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    )
    for document in mesh_documents:
        validate_manifest(document)


def test_schema_validation_catches_mistakes() -> None:
    """The validator is not vacuous: typos, CRD misuse and unknown kinds all fail."""
    deployment = copy.deepcopy(find(_render("llm-router", {}), "Deployment"))
    deployment["spec"]["replica"] = 2
    server = _render("llm-server", SERVER_MODES["keda-gateway"])
    scaled = copy.deepcopy(find(server, "ScaledObject"))
    del next(t for t in scaled["spec"]["triggers"] if t["type"] == "cpu")["metricType"]
    monitor = copy.deepcopy(find(server, "ServiceMonitor"))
    monitor["spec"]["endpoint"] = monitor["spec"].pop("endpoints")
    envoy_filter = copy.deepcopy(find(_render("llm-router", _generated_mesh_values()), "EnvoyFilter"))
    route = next(p for p in envoy_filter["spec"]["configPatches"] if p["applyTo"] == "HTTP_ROUTE")
    route["match"] = {"context": "GATEWAY", "listener": {"portNumber": 80}}
    rules = copy.deepcopy(find(_render("llm-router", {"serviceMonitor": {"enabled": True}}), "PrometheusRule"))
    rules["spec"]["groups"][0]["rules"][0]["record"] = "also_a_recording_rule"
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    for broken in (deployment, scaled, monitor, envoy_filter, rules, unknown):
        with pytest.raises(AssertionError):
            validate_manifest(broken)


def test_invalid_modes_are_refused() -> None:
    with pytest.raises(helm_python.HelmError, match="mode must be gateway or mesh"):
        render_chart("llm-router", {"mode": "sidecar"}, name="r", namespace=NAMESPACE)
    with pytest.raises(helm_python.HelmError, match=r"autoscaling\.mode must be none, hpa or keda"):
        render_chart("llm-server", {"autoscaling": {"mode": "vpa"}}, name="s", namespace=NAMESPACE)
    with pytest.raises(helm_python.HelmError, match="enable serviceMonitor"):
        render_chart("llm-server", {"autoscaling": {"mode": "keda"}}, name="s", namespace=NAMESPACE)


# --- llm-router: the embedded router config and the Envoy bootstrap rendered from it ----------------------


def _router_yaml(documents: list[dict[str, Any]]) -> str:
    return find(documents, "ConfigMap", "llm-router-config")["data"]["router.yaml"]


def _client_keys(documents: list[dict[str, Any]]) -> str:
    """The keys.yaml the controller reads: the chart's Secret, or (auth.existingSecret) one an operator made."""
    created = [d for d in documents if d["kind"] == "Secret" and "keys.yaml" in d.get("stringData", {})]
    if created:
        return created[0]["stringData"]["keys.yaml"]
    return yaml.safe_dump({"keys": [{"name": "ci", "tenant": "ci", "keyHash": hash_key("ci-test-key")}]})


def _local_router_yaml(documents: list[dict[str, Any]], directory: Path) -> str:
    """The embedded router.yaml with its keys file (mounted in the pod) written under `directory` instead."""
    router_yaml = _router_yaml(documents)
    keys_file = (yaml.safe_load(router_yaml).get("auth") or {}).get("keysFile")
    if not keys_file:
        return router_yaml
    local = directory / "keys" / "keys.yaml"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(_client_keys(documents))
    assert router_yaml.count(keys_file) == 1
    return router_yaml.replace(keys_file, str(local))


def _pod_env(documents: list[dict[str, Any]], container: str = "controller") -> tuple[set[str], bool]:
    """(variables the container gets explicitly, whether it also gets a whole Secret via envFrom)."""
    spec = {**containers(find(documents, "Deployment")), **containers(find(documents, "Deployment"), init=True)}
    chosen = spec[container]
    names = {e["name"] for e in chosen.get("env", [])}
    return names, bool(chosen.get("envFrom"))


def _dummy_env(router_yaml: str, documents: list[dict[str, Any]]) -> dict[str, str]:
    """A value for every secret the config requires, after proving the pod provides each of them."""
    required, _ = referenced_variables(router_yaml)
    explicit, from_secret = _pod_env(documents)
    missing = required - explicit
    assert not missing or from_secret, f"config needs {sorted(missing)} but the controller gets no such variable"

    def dummy(name: str) -> str:
        return (
            f"redis://test-{name.lower().replace('_', '-')}:6379"
            if name.endswith("REDIS_URL")
            else f"test-{name.lower()}"
        )

    return {name: dummy(name) for name in required}


@pytest.mark.parametrize("mode", sorted(GATEWAY_MODES))
def test_router_config_passes_llm_router_validate(mode: str, tmp_path: Path) -> None:
    documents = _render("llm-router", GATEWAY_MODES[mode])
    router_yaml = _local_router_yaml(documents, tmp_path)
    config_file = tmp_path / "router.yaml"
    config_file.write_text(router_yaml)
    env = {**os.environ, **_dummy_env(router_yaml, documents)}
    result = subprocess.run(
        [sys.executable, "-m", "extproc.cli", "validate", "--config", str(config_file)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    config = load_config(config_file, env)
    # The sidecar contract: Envoy dials the controller on loopback; kubelet and Prometheus reach it on the pod IP.
    assert config.server.controller_host == "127.0.0.1"
    assert config.server.controller_bind_host == "0.0.0.0"
    # Client auth is on in every gateway example, with at least one (hashed) key from the mounted file.
    assert config.auth.enabled and config.auth.file_keys and not config.auth.keys
    assert all(k.key_hash.startswith("sha256:") for k in config.auth.file_keys)


@pytest.mark.parametrize("mode", sorted(GATEWAY_MODES))
def test_client_keys_secret_is_mounted_read_only_where_the_config_reads_it(mode: str) -> None:
    values = chart_values("llm-router", GATEWAY_MODES[mode])
    documents = _render("llm-router", GATEWAY_MODES[mode])
    keys_file = Path(yaml.safe_load(_router_yaml(documents))["auth"]["keysFile"])
    deployment = find(documents, "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    secret_name = values["auth"]["existingSecret"] or "llm-router-client-keys"
    for container in (containers(deployment)["controller"], containers(deployment, init=True)["render-envoy-config"]):
        mounted = [
            Path(m["mountPath"]) / item["path"]
            for m in container["volumeMounts"]
            for source in volumes[m["name"]].get("projected", {}).get("sources", [])
            if source.get("secret", {}).get("name") == secret_name
            for item in source["secret"]["items"]
            if item["key"] == "keys.yaml" and m.get("readOnly")
        ]
        assert mounted == [keys_file], f"{container['name']}: keys file not mounted read-only at {keys_file}"
    created = [d for d in documents if d["kind"] == "Secret"]
    if values["auth"]["existingSecret"]:
        assert not created, "with auth.existingSecret the chart creates no Secret"
    else:
        (secret,) = created
        assert secret["metadata"]["name"] == secret_name
        keys = yaml.safe_load(secret["stringData"]["keys.yaml"])["keys"]
        assert keys == values["auth"]["keys"]
    redis = yaml.safe_load(_router_yaml(documents))["auth"].get("redisUrl")
    assert redis == (values["auth"]["redisUrl"] or None)
    if redis:
        assert referenced_variables(redis)[0] <= _pod_env(documents)[0], "redisUrl's variable reaches the pod"


def test_client_auth_misconfigurations_are_refused() -> None:
    with pytest.raises(helm_python.HelmError, match=r"auth\.enabled needs client keys"):
        render_chart("llm-router", {"auth": {"keys": []}}, name="r", namespace=NAMESPACE)
    with pytest.raises(helm_python.HelmError, match=r"not config\.auth"):
        render_chart("llm-router", {"config": {"auth": {"enabled": False}}}, name="r", namespace=NAMESPACE)
    mesh_with_auth = {**MESH_VALUES, "auth": {"enabled": True}}
    with pytest.raises(helm_python.HelmError, match="not supported in mesh mode"):
        render_chart("llm-router", mesh_with_auth, name="r", namespace=NAMESPACE)
    # Switched off explicitly: no auth section, no Secret, no keys mount.
    documents = _render("llm-router", {"auth": {"enabled": False}})
    assert "auth" not in yaml.safe_load(_router_yaml(documents))
    assert not [d for d in documents if d["kind"] == "Secret"]


@pytest.mark.parametrize("mode", sorted(GATEWAY_MODES))
def test_init_container_renders_a_bootstrap_envoy_accepts(mode: str, tmp_path: Path) -> None:
    """Run the init container's own command on the ConfigMap, then validate the result with real Envoy."""
    documents = _render("llm-router", GATEWAY_MODES[mode])
    router_yaml = _local_router_yaml(documents, tmp_path)
    deployment = find(documents, "Deployment")
    init = containers(deployment, init=True)["render-envoy-config"]
    envoy = containers(deployment)["envoy"]
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    config_path = Path(mounts["config"]) / "router.yaml"
    output_path = Path(envoy["args"][envoy["args"].index("-c") + 1])
    assert output_path.parent == Path(mounts["envoy-config"])
    assert {m["name"]: m["mountPath"] for m in envoy["volumeMounts"]}["envoy-config"] == str(output_path.parent)

    (tmp_path / "router.yaml").write_text(router_yaml)
    local = {str(config_path): str(tmp_path / "router.yaml"), str(output_path): str(tmp_path / output_path.name)}
    args = [local.get(a, a) for a in init["args"]]
    env = {**os.environ, **_dummy_env(router_yaml, documents)}
    subprocess.run([sys.executable, "-m", "extproc.cli", *args], check=True, env=env, capture_output=True)
    bootstrap = tmp_path / output_path.name
    envoy_validate(bootstrap)
    rendered = yaml.safe_load(bootstrap.read_text())
    assert "sk-" not in bootstrap.read_text() and "test-" not in bootstrap.read_text(), "a secret leaked into Envoy"
    assert "envoy.filters.http.ext_authz" in bootstrap.read_text(), "client auth: Envoy checks every key"

    server = load_config(tmp_path / "router.yaml", env).server
    listener = rendered["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert container_ports(envoy) == {"http": listener["port_value"]} and listener["port_value"] == server.port
    assert container_ports(containers(deployment)["controller"]) == {
        "grpc": server.grpc_port,
        "admin": server.http_port,
    }
    assert rendered["admin"]["address"]["socket_address"]["port_value"] == server.envoy_admin_port
    probe = " ".join(envoy["readinessProbe"]["exec"]["command"])
    assert f"/dev/tcp/127.0.0.1/{server.envoy_admin_port}" in probe and "GET /ready" in probe


@pytest.mark.parametrize("mode", sorted(GATEWAY_MODES))
def test_router_pod_wiring(mode: str) -> None:
    documents = _render("llm-router", GATEWAY_MODES[mode])
    deployment = find(documents, "Deployment")
    pod = deployment["spec"]["template"]
    controller = containers(deployment)["controller"]
    init = containers(deployment, init=True)["render-envoy-config"]
    # The renderer sees exactly the controller's secrets (an unset ${VAR} fails the render).
    assert init.get("env") == controller.get("env") and init.get("envFrom") == controller.get("envFrom")
    assert controller["readinessProbe"]["httpGet"] == {"path": "/health", "port": "admin"}
    assert controller["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "admin"}
    assert (
        pod["metadata"]["annotations"]["checksum/config"]
        == hashlib.sha256(_router_yaml(documents).rstrip("\n").encode()).hexdigest()
    )
    for container in [*containers(deployment).values(), init]:
        security = container["securityContext"]
        assert (
            security["runAsNonRoot"] and security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
        )

    service = find(documents, "Service")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    named_ports = {**container_ports(controller), **container_ports(containers(deployment)["envoy"])}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= named_ports.keys()
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for document in (d for d in documents if d["kind"] == kind):
            selector = document["spec"].get("selector") or document["spec"]["podSelector"]
            assert selector["matchLabels"].items() <= pod["metadata"]["labels"].items()
    for policy in (d for d in documents if d["kind"] == "NetworkPolicy"):
        ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert ports == {"http", "admin"}, "the ext_proc port must stay private to the pod"
    for hpa in (d for d in documents if d["kind"] == "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert "replicas" not in deployment["spec"], "the HPA owns replicas"
    for monitor in (d for d in documents if d["kind"] == "ServiceMonitor"):
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}


def test_full_gateway_mode_renders_every_feature() -> None:
    documents = _render("llm-router", GATEWAY_MODES["gateway-full"])
    assert kinds(documents) == sorted(
        [
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    )
    dashboards = next(
        d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboards")
    )
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = sorted((CHARTS / "llm-router" / "dashboards").glob("*.json"))
    assert {p.name for p in shipped} == {"llm-router.json", "llm-router-cost.json"}
    assert set(dashboards["data"]) == {p.name for p in shipped}, "every shipped dashboard, in one ConfigMap"
    for path in shipped:
        assert json.loads(dashboards["data"][path.name]) == json.loads(path.read_text())
    uids = [json.loads(text)["uid"] for text in dashboards["data"].values()]
    assert len(set(uids)) == len(uids), "Grafana needs distinct dashboard uids"


ALERTS = CHARTS / "llm-router" / "alerts" / "llm-router-alerts.yaml"


def test_prometheus_rule_ships_the_alerts_and_follows_the_service_monitor() -> None:
    documents = _render("llm-router", GATEWAY_MODES["gateway-full"])
    rule = find(documents, "PrometheusRule")
    monitor = find(documents, "ServiceMonitor")
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text()), "the alerts file, verbatim"
    # kube-prometheus-stack's ruleSelector matches the same release label as its serviceMonitorSelector.
    assert rule["metadata"]["labels"].items() >= monitor["metadata"]["labels"].items()
    names = [g["name"] for g in rule["spec"]["groups"]]
    assert len(set(names)) == len(names), "group names must be unique"
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert len(set(alerts)) == len(alerts) and all(
        r.get("labels", {}).get("severity") for g in rule["spec"]["groups"] for r in g["rules"]
    )
    on = {"serviceMonitor": {"enabled": True}}
    cases = [
        ({}, 0),
        (on, 1),
        ({**on, "prometheusRule": {"enabled": False}}, 0),
        ({"prometheusRule": {"enabled": True}}, 1),
    ]
    for values, expected in cases:
        assert kinds(_render("llm-router", values)).count("PrometheusRule") == expected, values
    labelled_values = {"prometheusRule": {"enabled": True, "labels": {"team": "llm"}}}
    labelled = find(_render("llm-router", labelled_values), "PrometheusRule")
    assert labelled["metadata"]["labels"]["team"] == "llm"


def _exported_metrics() -> set[str]:
    exported = {sample.name for metric in Metrics().registry.collect() for sample in metric.samples}
    return exported | {metric.name for metric in Metrics().registry.collect()}


def _assert_exported(expr: str, exported: set[str]) -> None:
    for name in re.findall(r"\bllm_router_[a-z0-9_]+", expr):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in exported or base in exported or name.removesuffix("_total") in exported, name


@pytest.mark.parametrize("dashboard", ["llm-router.json", "llm-router-cost.json"])
def test_dashboard_queries_use_metrics_the_controller_exports(dashboard: str) -> None:
    document = json.loads((CHARTS / "llm-router" / "dashboards" / dashboard).read_text())
    exported = _exported_metrics()
    for panel in document["panels"]:
        for target in panel.get("targets", []):
            assert target.get("datasource", panel.get("datasource")) == {"type": "prometheus", "uid": "prometheus"}
            _assert_exported(target["expr"], exported)


def test_alert_rules_use_metrics_the_controller_exports() -> None:
    exported = _exported_metrics()
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    assert rules
    for rule in rules:
        _assert_exported(str(rule["expr"]), exported)


# --- llm-router mesh mode ----------------------------------------------------------------------------------


def test_mesh_filters_derive_from_the_rendered_bootstrap(mesh_documents: list[dict[str, Any]]) -> None:
    envoy_filter = find(mesh_documents, "EnvoyFilter")
    service = find(mesh_documents, "Service")
    grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    outbound = f"outbound|{grpc['port']}||{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    patches = envoy_filter["spec"]["configPatches"]
    text = json.dumps(patches)
    assert CONTROLLER_GRPC not in text and CONTROLLER_HTTP not in text
    grpc_clusters = {
        n["envoy_grpc"]["cluster_name"] for n in walk(patches) if isinstance(n, dict) and "envoy_grpc" in n
    }
    assert grpc_clusters == {outbound}
    assert envoy_filter["metadata"]["namespace"] == MESH_VALUES["mesh"]["namespace"]
    assert envoy_filter["spec"]["workloadSelector"]["labels"] == MESH_VALUES["mesh"]["workloadSelector"]
    filters = [p for p in patches if p["applyTo"] == "HTTP_FILTER"]
    assert filters and all(p["patch"]["value"]["disabled"] for p in filters), "only the chat route may run ext_proc"
    assert {p["applyTo"] for p in patches} == {"HTTP_FILTER", "HTTP_ROUTE", "VIRTUAL_HOST", "CLUSTER"}
    deployment = find(mesh_documents, "Deployment")
    assert list(containers(deployment)) == ["controller"] and not containers(deployment, init=True)


def test_mesh_patches_applied_to_a_proxy_config_pass_envoy_validate(
    mesh_documents: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Apply the patches the way Istio does onto a minimal gateway config, then let real Envoy judge it."""
    patches = find(mesh_documents, "EnvoyFilter")["spec"]["configPatches"]
    service = find(mesh_documents, "Service")
    grpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    outbound = f"outbound|{grpc_port}||llm-router.{NAMESPACE}.svc.cluster.local"
    virtual_host = {
        "name": MESH_VALUES["mesh"]["virtualHost"],
        "domains": ["*"],
        "routes": [{"name": "istio-default", "match": {"prefix": "/"}, "direct_response": {"status": 404}}],
    }
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }
    http_filters: list[dict[str, Any]] = [router]
    clusters: list[dict[str, Any]] = [
        {
            "name": outbound,
            "type": "STRICT_DNS",
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }
            },
            "load_assignment": {
                "cluster_name": outbound,
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {
                                "endpoint": {
                                    "address": {
                                        "socket_address": {
                                            "address": f"llm-router.{NAMESPACE}.svc.cluster.local",
                                            "port_value": grpc_port,
                                        }
                                    }
                                }
                            }
                        ]
                    }
                ],
            },
        }
    ]
    for patch in patches:
        operation, value = patch["patch"]["operation"], patch["patch"]["value"]
        if patch["applyTo"] == "HTTP_FILTER" and operation == "INSERT_BEFORE":
            http_filters.insert(http_filters.index(router), value)
        elif patch["applyTo"] == "HTTP_ROUTE" and operation == "INSERT_FIRST":
            virtual_host["routes"].insert(0, value)
        elif patch["applyTo"] == "VIRTUAL_HOST" and operation == "MERGE":
            virtual_host.update(value)
        elif patch["applyTo"] == "CLUSTER" and operation == "ADD":
            clusters.append(value)
        else:
            raise AssertionError(f"unexpected patch {patch['applyTo']} {operation}")
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": "outbound_0.0.0.0_80",
        "route_config": {"name": "http.80", "virtual_hosts": [virtual_host]},
        "http_filters": http_filters,
    }
    bootstrap = {
        "static_resources": {
            "clusters": clusters,
            "listeners": [
                {
                    "name": "0.0.0.0_80",
                    "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8080}},
                    "filter_chains": [
                        {
                            "filters": [
                                {"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}
                            ]
                        }
                    ],
                }
            ],
        }
    }
    path = tmp_path / "istio-gateway.yaml"
    path.write_text(yaml.safe_dump(bootstrap))
    envoy_validate(path)
    chat = virtual_host["routes"][0]
    assert chat["match"] == {"path": "/v1/chat/completions"} and "cluster_header" in chat["route"]


def test_mesh_mode_refuses_stale_or_mismatched_patches() -> None:
    values = _mesh_values()
    stale = copy.deepcopy(values)
    stale["config"]["router"]["routingStrategy"] = "latency"
    with pytest.raises(helm_python.HelmError, match="different router config"):
        render_chart("llm-router", stale, name="llm-router", namespace=NAMESPACE)
    moved = copy.deepcopy(values)
    moved["mesh"]["virtualHost"] = "other.example.com:80"
    with pytest.raises(helm_python.HelmError, match="targets virtual host"):
        render_chart("llm-router", moved, name="llm-router", namespace=NAMESPACE)
    with pytest.raises(helm_python.HelmError, match=r"needs mesh\.generated"):
        render_chart("llm-router", MESH_VALUES, name="llm-router", namespace=NAMESPACE)


def test_mesh_generator_refuses_environment_dependent_routing() -> None:
    document = {"router": {"routingStrategy": "${STRATEGY:-cost}"}, "clusters": [{"sharedSecret": "${S}"}]}
    assert mesh_patches.env_references_outside_secrets(document) == ["router.routingStrategy"]
    risky = copy.deepcopy(MESH_VALUES)
    risky["config"]["router"]["routingStrategy"] = "${STRATEGY:-cost}"
    with pytest.raises(subprocess.CalledProcessError):
        _mesh_values(risky)


# --- llm-server ----------------------------------------------------------------------------------------------


def _llama(documents: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = next(
        d for d in documents if d["kind"] == "Deployment" and not d["metadata"]["name"].endswith("-gateway")
    )
    return deployment, containers(deployment)["llama"]


@pytest.mark.parametrize("mode", sorted(SERVER_MODES))
def test_llama_server_arguments_follow_the_values(mode: str) -> None:
    values = chart_values("llm-server", SERVER_MODES[mode])
    documents = _render("llm-server", SERVER_MODES[mode])
    deployment, llama = _llama(documents)
    args = llama["args"]
    flag = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("-") and not args[i + 1].startswith("-")}
    parallel = values["server"]["parallel"]
    assert flag["-np"] == str(parallel)
    assert flag["-c"] == str(parallel * values["server"]["contextPerSlot"]), "-c is shared by the slots"
    assert flag["-m"] == f"/models/{values['model']['file']}"
    assert flag["--alias"] == values["model"]["alias"] and "--metrics" in args
    assert flag["--port"] == str(container_ports(llama)["http"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert llama[probe]["httpGet"] == {"path": "/health", "port": "http"}
    fetch = containers(deployment, init=True)["fetch-model"]
    assert fetch["image"] == llama["image"], "the init container uses the llama.cpp image (it ships curl)"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    claim = volumes["models"].get("persistentVolumeClaim")
    assert bool(claim) == values["persistence"]["enabled"]
    if claim:
        find(documents, "PersistentVolumeClaim", claim["claimName"])
    autoscalers = [d["kind"] for d in documents if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")]
    assert (
        autoscalers
        == {"none": [], "hpa": ["HorizontalPodAutoscaler"], "keda": ["ScaledObject"]}[values["autoscaling"]["mode"]]
    )
    assert ("replicas" in deployment["spec"]) == (values["autoscaling"]["mode"] == "none")


def test_keda_scales_on_the_queue_depth_prometheus_scrapes() -> None:
    documents = _render("llm-server", SERVER_MODES["keda-gateway"])
    scaled = find(documents, "ScaledObject")
    deployment, _ = _llama(documents)
    service = find(documents, "Service", "llm-server")
    monitor = find(documents, "ServiceMonitor")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    prometheus = next(t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus")
    # The ServiceMonitor's targets carry namespace/service labels: the query must select exactly this Service.
    assert prometheus["metadata"]["query"] == (
        f'sum(llamacpp:requests_deferred{{namespace="{NAMESPACE}",service="{service["metadata"]["name"]}"}})'
    )
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {t["type"] for t in scaled["spec"]["triggers"]} == {"prometheus", "cpu"}


def test_cluster_gateway_envoy_config_and_verifier(tmp_path: Path) -> None:
    """The gateway pod: its init container's own command renders a bootstrap real Envoy accepts, from the
    gateway.yaml the verifier serves; ports, upstream and secrets line up; the Ingress only reaches it."""
    documents = _render("llm-server", SERVER_MODES["keda-gateway"])
    config_map = find(documents, "ConfigMap", "llm-server-gateway")
    deployment = find(documents, "Deployment", "llm-server-gateway")
    init = containers(deployment, init=True)["render-envoy-config"]
    envoy, verifier = containers(deployment)["envoy"], containers(deployment)["verifier"]
    secrets = {"LLM_CLUSTER_SHARED_SECRET": "s3cret"}
    assert {e["name"] for e in init["env"]} == {e["name"] for e in verifier["env"]} == set(secrets)
    assert referenced_variables(config_map["data"]["gateway.yaml"])[0] == set(secrets)
    assert verifier["args"] == ["serve", "--role", "cluster-gateway", "--config", "/etc/llm-gateway/gateway.yaml"]

    (tmp_path / "gateway.yaml").write_text(config_map["data"]["gateway.yaml"])
    local = {
        "/etc/llm-gateway/gateway.yaml": str(tmp_path / "gateway.yaml"),
        "/etc/envoy/envoy.yaml": str(tmp_path / "envoy.yaml"),
    }
    assert envoy["args"][envoy["args"].index("-c") + 1] in local
    command = [sys.executable, "-m", "extproc.cli", *(local.get(a, a) for a in init["args"])]
    subprocess.run(command, check=True, env={**os.environ, **secrets}, capture_output=True)
    envoy_validate(tmp_path / "envoy.yaml")
    assert "s3cret" not in (tmp_path / "envoy.yaml").read_text()

    from extproc.security.gateway_config import load_gateway_config

    gateway = load_gateway_config(tmp_path / "gateway.yaml", secrets)
    assert gateway.shared_secret == "s3cret" and set(gateway.public_paths) == {"/health", "/metrics", "/props"}
    server_values = chart_values("llm-server", SERVER_MODES["keda-gateway"])["gateway"]
    assert gateway.max_nonces == server_values["maxNonces"] and gateway.signature_window == 60.0
    mounts = {m["mountPath"] for c in (init, verifier) for m in c["volumeMounts"] if m["name"] == "gateway-config"}
    assert mounts == {"/etc/llm-gateway"}
    bootstrap = yaml.safe_load((tmp_path / "envoy.yaml").read_text())
    listener = bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"]
    assert listener == container_ports(envoy)["http"] == gateway.server.port
    assert container_ports(verifier) == {"grpc": gateway.server.grpc_port, "admin": gateway.server.http_port}
    probe = " ".join(envoy["readinessProbe"]["exec"]["command"])
    assert f"/dev/tcp/127.0.0.1/{gateway.server.envoy_admin_port}" in probe
    service = find(documents, "Service", "llm-server")
    assert str(gateway.upstream) == (
        f"http://llm-server.{NAMESPACE}.svc.cluster.local:{service['spec']['ports'][0]['port']}"
    )
    gateway_service = find(documents, "Service", "llm-server-gateway")
    assert gateway_service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    ingress = find(documents, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "llm-server-gateway", "with the gateway on, nothing reaches llama.cpp unsigned"
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    policy = find(documents, "NetworkPolicy")
    sources = policy["spec"]["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}} in sources


class _ModelServer(http.server.BaseHTTPRequestHandler):
    body = b"GGUF" + bytes(range(256)) * 64
    requests = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        self.send_response(200)
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def model_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ModelServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _ModelServer.requests = 0
    yield f"http://127.0.0.1:{server.server_address[1]}/model.gguf"
    server.shutdown()


def test_fetch_model_init_script_downloads_once_and_verifies(model_server: str, tmp_path: Path) -> None:
    """The init container's script, run by /bin/sh with curl: download, skip when present, digest check."""
    documents = _render("llm-server", {"model": {"uri": model_server, "file": "m.gguf"}})
    deployment, _ = _llama(documents)
    fetch = containers(deployment, init=True)["fetch-model"]
    script = fetch["args"][0].replace("/models/", f"{tmp_path}/")
    env = {e["name"]: e["value"] for e in fetch["env"] if "value" in e}

    def run(**overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*fetch["command"], script],
            env={"PATH": os.environ["PATH"], "HOSTNAME": "pod-1", **env, **overrides},
            capture_output=True,
            text=True,
        )

    bad = run(MODEL_SHA256="0" * 64, MODEL_FILE="bad.gguf")
    assert bad.returncode != 0 and not list(tmp_path.iterdir()), "a failed check leaves nothing behind"
    digest = hashlib.sha256(_ModelServer.body).hexdigest()
    first = run(MODEL_SHA256=digest)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "m.gguf").read_bytes() == _ModelServer.body
    requests = _ModelServer.requests
    again = run()
    assert again.returncode == 0 and "already present" in again.stdout and _ModelServer.requests == requests


# --- the charts together: platform, Argo CD app-of-apps ------------------------------------------------------


def test_router_default_cluster_is_the_llm_server_release_argo_cd_installs(tmp_path: Path) -> None:
    apps = yaml.safe_load((CHARTS / "argocd-apps" / "values.yaml").read_text())["apps"]
    server_app = apps["llm-server"]
    server_docs = manifests(render_chart("llm-server", {}, name="llm-server", namespace=server_app["namespace"]))
    service = find(server_docs, "Service", "llm-server")
    server_values = chart_values("llm-server")
    (cluster,) = parse_config_text(_local_router_yaml(_render("llm-router", {}), tmp_path), {}).clusters
    assert str(cluster.endpoint) == (
        f"http://{service['metadata']['name']}.{server_app['namespace']}.svc.cluster.local:{service['spec']['ports'][0]['port']}"
    )
    assert cluster.model == server_values["model"]["alias"]
    assert cluster.context_window == server_values["server"]["contextPerSlot"]


def test_platform_provides_what_the_charts_expect() -> None:
    chart = yaml.safe_load((CHARTS / "platform" / "Chart.yaml").read_text())
    values = yaml.safe_load((CHARTS / "platform" / "values.yaml").read_text())
    dependencies = {d["name"]: d for d in chart["dependencies"]}
    assert set(dependencies) == {"ingress-nginx", "cert-manager", "kube-prometheus-stack", "keda"}
    for name, dependency in dependencies.items():
        assert dependency["version"][0].isdigit() or dependency["version"].startswith("v"), "pin every version"
        assert dependency["repository"].startswith("https://")
        assert dependency["condition"] == f"{name}.enabled" and values[name]["enabled"] is True
    server_values = chart_values("llm-server")
    router_values = chart_values("llm-router")
    assert (
        values["ingress-nginx"]["controller"]["ingressClassResource"]["name"] == server_values["ingress"]["className"]
    )
    assert values["clusterIssuer"]["name"] == server_values["ingress"]["tls"]["clusterIssuer"]
    sidecar = values["kube-prometheus-stack"]["grafana"]["sidecar"]["dashboards"]
    assert {sidecar["label"]: "1"} == router_values["dashboards"]["labels"] and sidecar["searchNamespace"] == "ALL"
    prometheus = values["kube-prometheus-stack"]["prometheus"]["prometheusSpec"]
    assert prometheus["serviceMonitorSelectorNilUsesHelmValues"] is False, "ServiceMonitors of other releases"
    assert prometheus["ruleSelectorNilUsesHelmValues"] is False, "PrometheusRules of other releases"
    fullname = values["kube-prometheus-stack"]["fullnameOverride"]
    assert server_values["autoscaling"]["keda"]["serverAddress"].startswith(f"http://{fullname}-prometheus.")


def test_argo_cd_app_of_apps_points_at_this_repository() -> None:
    root = yaml.safe_load((REPO / "deploy" / "argocd" / "root.yaml").read_text())
    validate_manifest(root)
    assert (REPO / root["spec"]["source"]["path"] / "Chart.yaml").exists()
    values = yaml.safe_load((CHARTS / "argocd-apps" / "values.yaml").read_text())
    assert root["spec"]["source"]["repoURL"] == values["repoURL"]
    assert root["spec"]["source"]["targetRevision"] == values["targetRevision"]
    applications = _render("argocd-apps", {})
    assert sorted(a["metadata"]["name"] for a in applications) == sorted(values["apps"])
    waves = {}
    for app in applications:
        source = app["spec"]["source"]
        assert (REPO / source["path"] / "Chart.yaml").exists(), source["path"]
        for value_file in source["helm"].get("valueFiles", []):
            assert (REPO / source["path"] / value_file).exists()
        waves[app["metadata"]["name"]] = int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
    assert waves["platform"] < waves["llm-server"] < waves["llm-router"], "CRDs and backends first"


def test_kubernetes_version_is_supported_by_every_chart() -> None:
    for chart in ("llm-router", "llm-server", "platform"):
        constraint = yaml.safe_load((CHARTS / chart / "Chart.yaml").read_text())["kubeVersion"]
        minimum = tuple(int(x) for x in constraint.removeprefix(">=").removesuffix("-0").split("."))
        assert tuple(int(x) for x in KUBERNETES_VERSION.split(".")) >= minimum
