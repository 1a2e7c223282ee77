"""Run one infra/<cloud> Pulumi program under Pulumi's unit-test mocks; print what it declared as JSON.

    python -m tests.deploy_pulumi_harness aws [--stack dev]

No engine, no cloud: every resource registration and invoke is answered by `Recorder` below, with plausible
computed outputs (ARNs, endpoints, IPs). Output: {"resources": [...], "outputs": {...}, "secret_outputs": [...]}.
Run in a subprocess per program, since Pulumi's runtime settings are process-global.
"""

from __future__ import annotations

import argparse
import base64
import json
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import yaml

REPO = Path(__file__).resolve().parents[1]
ACCOUNT = "123456789012"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
KUBECONFIG_YAML = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"


def _aws(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    name = args.inputs.get("name", args.name)
    if args.typ == "aws:eks/cluster:Cluster":
        return {
            "arn": f"arn:aws:eks:us-west-2:{ACCOUNT}:cluster/{name}",
            "endpoint": "https://0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com",
            "certificateAuthority": {"data": base64.b64encode(b"eks-ca").decode()},
        }
    if args.typ == "aws:iam/role:Role":
        return {"arn": f"arn:aws:iam::{ACCOUNT}:role/{name}"}
    if args.typ == "aws:ecr/repository:Repository":
        return {"repositoryUrl": f"{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com/{name}"}
    if args.typ == "aws:ec2/eip:Eip":
        n = sum(map(ord, args.name)) % 250 + 1
        return {"allocationId": f"eipalloc-{n:04x}", "publicIp": f"203.0.113.{n}"}
    return {}


def _gcp(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    if args.typ == "gcp:container/cluster:Cluster":
        return {"endpoint": "34.118.0.10", "masterAuth": {"clusterCaCertificate": base64.b64encode(b"gke-ca").decode()}}
    if args.typ == "gcp:compute/address:Address":
        return {"address": "203.0.113.20"}
    return {}


# azure-native: the input that names each resource (its `name` output).
AZURE_NAME_INPUTS = {
    "azure-native:resources:ResourceGroup": "resourceGroupName",
    "azure-native:network:VirtualNetwork": "virtualNetworkName",
    "azure-native:network:Subnet": "subnetName",
    "azure-native:network:PublicIPAddress": "publicIpAddressName",
    "azure-native:containerregistry:Registry": "registryName",
    "azure-native:containerservice:ManagedCluster": "resourceName",
}


def _azure(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    named = {"name": args.inputs.get(AZURE_NAME_INPUTS.get(args.typ, ""), args.name)}
    if args.typ == "azure-native:containerservice:ManagedCluster":
        return {
            **named,
            "fqdn": f"{args.inputs.get('dnsPrefix', 'aks')}-abcd1234.hcp.eastus.azmk8s.io",
            "identity": {"type": "SystemAssigned", "principalId": "11111111-1111-1111-1111-111111111111"},
            "identityProfile": {"kubeletidentity": {"objectId": "22222222-2222-2222-2222-222222222222"}},
        }
    if args.typ == "azure-native:containerregistry:Registry":
        return {**named, "loginServer": f"{args.inputs['registryName']}.azurecr.io"}
    if args.typ == "azure-native:network:PublicIPAddress":
        return {**named, "ipAddress": "203.0.113.30"}
    return named


COMPUTED: dict[str, Callable[[pulumi.runtime.MockResourceArgs], dict[str, Any]]] = {
    "aws": _aws,
    "gcp": _gcp,
    "azure-native": _azure,
}
CALLS: dict[str, dict[str, Any]] = {
    "azure-native:authorization:getClientConfig": {
        "subscriptionId": SUBSCRIPTION,
        "tenantId": "33333333-3333-3333-3333-333333333333",
        "clientId": "44444444-4444-4444-4444-444444444444",
        "objectId": "55555555-5555-5555-5555-555555555555",
    },
    "azure-native:containerservice:listManagedClusterUserCredentials": {
        "kubeconfigs": [{"name": "clusterUser", "value": base64.b64encode(KUBECONFIG_YAML.encode()).decode()}]
    },
}


def _resource_id(args: pulumi.runtime.MockResourceArgs) -> str:
    """Cloud-shaped ids where programs use them (Azure role-assignment scopes); the logical name elsewhere."""
    if args.typ == "azure-native:resources:ResourceGroup":
        return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{args.inputs['resourceGroupName']}"
    if args.typ == "azure-native:containerregistry:Registry":
        return (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{args.inputs['resourceGroupName']}"
            f"/providers/Microsoft.ContainerRegistry/registries/{args.inputs['registryName']}"
        )
    return f"{args.name}-id"


class Recorder(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[dict[str, Any]] = []
        self.calls: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        computed = COMPUTED.get(args.typ.split(":", 1)[0], lambda _: {})(args)
        self.resources.append({"type": args.typ, "name": args.name, "inputs": args.inputs})
        return _resource_id(args), {**args.inputs, **computed}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]]]:
        self.calls.append(args.token)
        if args.token not in CALLS:
            raise KeyError(f"unmocked invoke {args.token}")
        return CALLS[args.token], []


def stack_config(program: Path, stack: str) -> tuple[str, dict[str, str]]:
    """The project name and the stack's config, as `pulumi up` would pass them."""
    project = yaml.safe_load((program / "Pulumi.yaml").read_text())["name"]
    values = yaml.safe_load((program / f"Pulumi.{stack}.yaml").read_text())["config"]
    config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    return project, config


def run(cloud: str, stack: str) -> dict[str, Any]:
    program = REPO / "infra" / cloud
    project, config = stack_config(program, stack)
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project=project, stack=stack, preview=False)
    pulumi.runtime.set_all_config(config)
    result: dict[str, Any] = {}

    @pulumi.runtime.test
    def program_run() -> pulumi.Output:
        runpy.run_path(str(program / "__main__.py"), run_name="__main__")
        outputs: dict[str, Any] = pulumi.runtime.get_root_resource().outputs  # type: ignore[union-attr]
        secret = pulumi.Output.all(
            *[
                pulumi.Output.from_input(v).is_secret() if isinstance(v, pulumi.Output) else False
                for v in outputs.values()
            ]
        )

        def store(values: list[Any]) -> None:
            resolved, flags = values
            result["outputs"] = dict(zip(outputs, resolved, strict=True))
            result["secret_outputs"] = [k for k, f in zip(outputs, flags, strict=True) if f]

        return pulumi.Output.all(pulumi.Output.all(*outputs.values()), secret).apply(store)

    program_run()
    result["resources"] = recorder.resources
    result["calls"] = recorder.calls
    result["project"] = project
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cloud", choices=["aws", "gcp", "azure"])
    parser.add_argument("--stack", default="dev")
    args = parser.parse_args(argv)
    json.dump(run(args.cloud, args.stack), sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
