"""The Pulumi programs (infra/aws, infra/gcp, infra/azure) run under Pulumi's unit-test mocks with their
shipped dev stack config: what they declare, how it is named and tagged, and what they export."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import subprocess
import sys
from typing import Any

import pytest
import yaml

from extproc.config.loader import parse_config
from infra.common.naming import Naming, dns_label
from infra.common.settings import DEFAULT_KUBERNETES_VERSION
from infra.common.tags import gcp_labels, standard_tags
from tests.deploy_support import KUBERNETES_VERSION, REPO

CLOUDS = ("aws", "gcp", "azure")
STANDARD_TAGS = ("project", "stack", "cloud", "owner", "managed-by", "component")
# Resources whose tags/labels input the tests expect to carry the standard set.
TAGGED = {
    "aws": {
        "aws:ec2/vpc:Vpc",
        "aws:ec2/subnet:Subnet",
        "aws:eks/cluster:Cluster",
        "aws:eks/nodeGroup:NodeGroup",
        "aws:ecr/repository:Repository",
        "aws:iam/role:Role",
        "aws:ec2/eip:Eip",
        "aws:ec2/natGateway:NatGateway",
    },
    "gcp": {
        "gcp:container/cluster:Cluster",
        "gcp:artifactregistry/repository:Repository",
        "gcp:compute/address:Address",
    },
    "azure": {
        "azure-native:resources:ResourceGroup",
        "azure-native:network:VirtualNetwork",
        "azure-native:containerregistry:Registry",
        "azure-native:containerservice:ManagedCluster",
        "azure-native:network:PublicIPAddress",
    },
}
TAG_INPUT = {"aws": "tags", "azure": "tags", "gcp": ("labels", "resourceLabels")}


@functools.cache
def _run(cloud: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.deploy_pulumi_harness", cloud],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout)


def _stack_config(cloud: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "infra" / cloud / "Pulumi.dev.yaml").read_text())["config"]


def _by_type(run: dict[str, Any], typ: str) -> list[dict[str, Any]]:
    return [r for r in run["resources"] if r["type"] == typ]


def _one(run: dict[str, Any], typ: str) -> dict[str, Any]:
    (resource,) = _by_type(run, typ)
    return resource["inputs"]


@pytest.mark.parametrize("cloud", CLOUDS)
def test_resources_are_named_and_tagged(cloud: str) -> None:
    run = _run(cloud)
    naming = Naming("llmr", "dev")
    for resource in run["resources"]:
        assert resource["name"].startswith(f"{naming.prefix}-"), resource["name"]
    tagged = [r for r in run["resources"] if r["type"] in TAGGED[cloud]]
    assert {r["type"] for r in tagged} == TAGGED[cloud], "every expected resource type was declared"
    expected = standard_tags(
        project=run["project"], stack="dev", cloud=cloud, owner=_stack_config(cloud)[f"{run['project']}:owner"]
    )
    if cloud == "gcp":
        expected = gcp_labels(expected)
    for resource in tagged:
        keys = TAG_INPUT[cloud] if isinstance(TAG_INPUT[cloud], tuple) else (TAG_INPUT[cloud],)
        tags = next(resource["inputs"][k] for k in keys if k in resource["inputs"])
        assert expected.items() <= tags.items(), f"{resource['type']} {resource['name']}: {tags}"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_exports_what_the_router_config_needs(cloud: str) -> None:
    run = _run(cloud)
    outputs, config = run["outputs"], _stack_config(cloud)
    project = run["project"]
    assert {"clusterName", "clusterEndpoint", "kubeconfig", "routerEndpoint", "routerCluster"} <= outputs.keys()
    assert run["secret_outputs"] == ["kubeconfig"], "only the kubeconfig is secret, and it is"
    assert outputs["clusterEndpoint"].startswith("https://")
    assert outputs["routerEndpoint"] == f"https://{config[f'{project}:llmHostname']}"
    cluster = outputs["routerCluster"]
    assert cluster["endpoint"] == outputs["routerEndpoint"] and cluster["authType"] == "hmac"
    price = float(config[f"{project}:nodeHourlyPrice"]) * int(config[f"{project}:nodeCount"])
    assert cluster["costPerHour"] == pytest.approx(price)
    secret_var = cluster["sharedSecret"].removeprefix("${").removesuffix("}")
    parsed = parse_config({"clusters": [cluster]}, {secret_var: "s3cret"})
    assert parsed.clusters[0].name == cluster["name"] and parsed.clusters[0].shared_secret == "s3cret"
    kubeconfig = yaml.safe_load(outputs["kubeconfig"])
    assert kubeconfig["kind"] == "Config"
    if cloud != "azure":  # AKS hands out its own kubeconfig (listManagedClusterUserCredentials)
        assert kubeconfig["clusters"][0]["cluster"]["server"] == outputs["clusterEndpoint"]
        assert kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]


def test_aws_vpc_eks_node_group_and_ecr() -> None:
    run = _run("aws")
    config = _stack_config("aws")
    cluster = _one(run, "aws:eks/cluster:Cluster")
    assert cluster["version"] == config["llm-router-aws:kubernetesVersion"]
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    subnets = {s["name"]: s["inputs"] for s in _by_type(run, "aws:ec2/subnet:Subnet")}
    public = {n for n, s in subnets.items() if s["tags"].get("kubernetes.io/role/elb") == "1"}
    private = {n for n, s in subnets.items() if s["tags"].get("kubernetes.io/role/internal-elb") == "1"}
    assert len(public) == len(private) == 2 and not public & private
    assert len({s["availabilityZone"] for s in subnets.values()}) == 2
    nodes = _one(run, "aws:eks/nodeGroup:NodeGroup")
    assert set(nodes["subnetIds"]) == {f"{n}-id" for n in private}, "nodes live in the private subnets"
    assert nodes["instanceTypes"] == [config["llm-router-aws:instanceType"]]
    assert nodes["scalingConfig"] == {"desiredSize": 2, "minSize": 1, "maxSize": 4}
    attachments = {
        r["inputs"]["policyArn"].rsplit("/", 1)[-1]
        for r in _by_type(run, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    }
    assert attachments == {
        "AmazonEKSClusterPolicy",
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonEC2ContainerRegistryReadOnly",
    }
    ecr = _one(run, "aws:ecr/repository:Repository")
    assert ecr["imageTagMutability"] == "IMMUTABLE" and ecr["imageScanningConfiguration"]["scanOnPush"]
    assert run["outputs"]["ecrRepositoryUrl"].endswith("/llmr-dev/llm-router")
    assert len(run["outputs"]["ingressIps"]) == 2 and run["outputs"]["ingressEipAllocations"].count("eipalloc-") == 2
    assert yaml.safe_load(run["outputs"]["kubeconfig"])["users"][0]["user"]["exec"]["command"] == "aws"


def test_gcp_network_gke_and_artifact_registry() -> None:
    run = _run("gcp")
    config = _stack_config("gcp")
    cluster = _one(run, "gcp:container/cluster:Cluster")
    assert cluster["location"] == config["gcp:region"] and cluster["removeDefaultNodePool"] is True
    assert cluster["privateClusterConfig"]["enablePrivateNodes"] is True
    assert cluster["workloadIdentityConfig"]["workloadPool"] == f"{config['gcp:project']}.svc.id.goog"
    assert cluster["minMasterVersion"] == config["llm-router-gcp:kubernetesVersion"]
    subnet = _one(run, "gcp:compute/subnetwork:Subnetwork")
    ranges = {r["rangeName"] for r in subnet["secondaryIpRanges"]}
    policy = cluster["ipAllocationPolicy"]
    assert {policy["clusterSecondaryRangeName"], policy["servicesSecondaryRangeName"]} == ranges
    pool = _one(run, "gcp:container/nodePool:NodePool")
    assert pool["nodeConfig"]["machineType"] == config["llm-router-gcp:machineType"]
    assert pool["autoscaling"] == {"minNodeCount": 1, "maxNodeCount": 4}
    assert pool["nodeConfig"]["workloadMetadataConfig"]["mode"] == "GKE_METADATA"
    assert _one(run, "gcp:artifactregistry/repository:Repository")["format"] == "DOCKER"
    assert (
        run["outputs"]["artifactRegistry"]
        == f"{config['gcp:region']}-docker.pkg.dev/{config['gcp:project']}/llmr-dev-images"
    )
    assert _by_type(run, "gcp:compute/routerNat:RouterNat"), "private nodes need Cloud NAT"
    assert run["outputs"]["ingressIp"]


def test_azure_aks_acr_and_role_assignments() -> None:
    run = _run("azure")
    config = _stack_config("azure")
    cluster = _one(run, "azure-native:containerservice:ManagedCluster")
    assert cluster["kubernetesVersion"] == config["llm-router-azure:kubernetesVersion"]
    (pool,) = cluster["agentPoolProfiles"]
    assert pool["vmSize"] == config["llm-router-azure:vmSize"] and pool["enableAutoScaling"] is True
    assert pool["vnetSubnetID"] == "llmr-dev-nodes-id"  # the API spells it so
    assert cluster["networkProfile"]["networkPluginMode"] == "overlay"
    assert cluster["oidcIssuerProfile"]["enabled"] and cluster["securityProfile"]["workloadIdentity"]["enabled"]
    registry = _one(run, "azure-native:containerregistry:Registry")
    assert registry["registryName"].isalnum() and not registry["adminUserEnabled"]
    assignments = {
        a["inputs"]["roleDefinitionId"].rsplit("/", 1)[-1]: a["inputs"]
        for a in _by_type(run, "azure-native:authorization:RoleAssignment")
    }
    acr_pull = assignments["7f951dda-4ed3-4680-a7ca-43fe172d538d"]
    assert acr_pull["scope"].endswith(f"/registries/{registry['registryName']}"), "kubelet may pull from the ACR"
    assert acr_pull["principalId"] == "22222222-2222-2222-2222-222222222222"  # the kubelet identity (mock)
    network = assignments["4d97b98b-1d4f-4787-a291-c67834d212e7"]
    assert network["scope"].endswith("/resourceGroups/llmr-dev-rg"), "AKS may attach the ingress IP"
    assert "azure-native:containerservice:listManagedClusterUserCredentials" in run["calls"]
    assert run["outputs"]["acrLoginServer"] == f"{registry['registryName']}.azurecr.io"


def test_naming_and_labels_respect_cloud_rules() -> None:
    assert dns_label("LLM Router_prod") == "llm-router-prod"
    long = Naming("llmr", "a-very-long-stack-name-for-a-feature-branch-environment").name("private-us-west-2a")
    assert len(long) <= 63 and long == dns_label(long)
    assert Naming("llmr", "Prod-EU").alnum("acr") == "llmrprodeuacr"
    assert len(Naming("llmr", "x" * 80).alnum("acr")) == 50
    assert gcp_labels({"Managed-By": "Pulumi", "9lives": "A/B"}) == {"managed-by": "pulumi", "k_9lives": "a_b"}


def test_programs_pin_the_versions_tested_here_and_the_tested_kubernetes() -> None:
    for cloud in CLOUDS:
        for line in (REPO / "infra" / cloud / "requirements.txt").read_text().split():
            name, version = line.split("==")
            assert importlib.metadata.version(name) == version, f"infra/{cloud}: {name}"
        assert _stack_config(cloud)[f"llm-router-{cloud}:kubernetesVersion"] == DEFAULT_KUBERNETES_VERSION
    assert KUBERNETES_VERSION.startswith(f"{DEFAULT_KUBERNETES_VERSION}.")
