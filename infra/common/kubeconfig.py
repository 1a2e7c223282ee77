"""Kubeconfig documents for EKS and GKE, authenticating through the clouds' own credential plugins."""

from __future__ import annotations

import json


def _kubeconfig(name: str, endpoint: str, ca_data: str, user: dict) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [{"name": name, "user": user}],
        },
        indent=2,
    )


def eks_kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """Tokens from `aws eks get-token` (the AWS CLI)."""
    exec_config = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "aws",
        "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region, "--output", "json"],
        "interactiveMode": "Never",
    }
    return _kubeconfig(cluster_name, endpoint, ca_data, {"exec": exec_config})


def gke_kubeconfig(cluster_name: str, endpoint: str, ca_data: str) -> str:
    """Tokens from `gke-gcloud-auth-plugin` (gcloud components install gke-gcloud-auth-plugin)."""
    server = endpoint if endpoint.startswith("https://") else f"https://{endpoint}"
    exec_config = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "gke-gcloud-auth-plugin",
        "provideClusterInfo": True,
        "interactiveMode": "Never",
    }
    return _kubeconfig(cluster_name, server, ca_data, {"exec": exec_config})
