"""GCP: a VPC-native network (subnet with pod/service ranges, Cloud NAT), a regional GKE cluster with private
nodes and an autoscaled node pool, an Artifact Registry repository, and a static IP for the ingress load
balancer. Exports what the router config needs."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_gcp as gcp

from infra.common.kubeconfig import gke_kubeconfig
from infra.common.naming import Naming
from infra.common.router import router_cluster, router_endpoint, secret_env_name
from infra.common.settings import CommonSettings
from infra.common.tags import gcp_labels, standard_tags

NODES_CIDR = "10.50.0.0/20"
PODS_CIDR = "10.52.0.0/14"
SERVICES_CIDR = "10.56.0.0/20"
MASTER_CIDR = "172.16.0.0/28"
DEFAULT_MACHINE_TYPE = "e2-standard-8"
DEFAULT_NODE_PRICE = 0.268  # e2-standard-8 on-demand, us-central1 list price (USD/hour)


def build() -> dict[str, Any]:
    config = pulumi.Config()
    gcp_config = pulumi.Config("gcp")
    project = gcp_config.require("project")
    region = gcp_config.require("region")
    settings = CommonSettings.load(config, default_node_price=DEFAULT_NODE_PRICE)
    naming = Naming("llmr", pulumi.get_stack())
    labels = gcp_labels(
        standard_tags(project=pulumi.get_project(), stack=pulumi.get_stack(), cloud="gcp", owner=settings.owner)
    )

    network = gcp.compute.Network(
        naming.name("vpc"), name=naming.name("vpc"), auto_create_subnetworks=False, routing_mode="REGIONAL"
    )
    subnet = gcp.compute.Subnetwork(
        naming.name("nodes"),
        name=naming.name("nodes"),
        region=region,
        network=network.id,
        ip_cidr_range=NODES_CIDR,
        private_ip_google_access=True,
        secondary_ip_ranges=[
            gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name="pods", ip_cidr_range=PODS_CIDR),
            gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name="services", ip_cidr_range=SERVICES_CIDR),
        ],
    )
    router = gcp.compute.Router(naming.name("router"), name=naming.name("router"), region=region, network=network.id)
    gcp.compute.RouterNat(
        naming.name("nat"),
        name=naming.name("nat"),
        region=region,
        router=router.name,
        nat_ip_allocate_option="AUTO_ONLY",
        source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
    )
    cluster = gcp.container.Cluster(
        naming.name("gke"),
        name=naming.name("gke"),
        location=region,
        network=network.id,
        subnetwork=subnet.id,
        remove_default_node_pool=True,
        initial_node_count=1,
        networking_mode="VPC_NATIVE",
        ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
            cluster_secondary_range_name="pods", services_secondary_range_name="services"
        ),
        private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
            enable_private_nodes=True, enable_private_endpoint=False, master_ipv4_cidr_block=MASTER_CIDR
        ),
        release_channel=gcp.container.ClusterReleaseChannelArgs(channel="REGULAR"),
        min_master_version=settings.kubernetes_version,
        workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
            workload_pool=f"{project}.svc.id.goog"
        ),
        resource_labels=labels,
        deletion_protection=config.get_bool("deletionProtection") or False,
    )
    pool = gcp.container.NodePool(
        naming.name("nodes"),
        name=naming.name("nodes"),
        cluster=cluster.id,
        location=region,
        node_count=settings.node_count,
        autoscaling=gcp.container.NodePoolAutoscalingArgs(
            min_node_count=settings.min_nodes, max_node_count=settings.max_nodes
        ),
        management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
        node_config=gcp.container.NodePoolNodeConfigArgs(
            machine_type=config.get("machineType") or DEFAULT_MACHINE_TYPE,
            disk_size_gb=100,
            oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
            labels={"workload": "llm"},
            resource_labels=labels,
            workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(mode="GKE_METADATA"),
        ),
    )
    repository = gcp.artifactregistry.Repository(
        naming.name("images"),
        repository_id=naming.name("images"),
        location=region,
        format="DOCKER",
        description="llm-router controller images",
        labels=labels,
    )
    # ingress-nginx's LoadBalancer Service takes it (controller.service.loadBalancerIP): point llmHostname here.
    ingress_ip = gcp.compute.Address(
        naming.name("ingress"), name=naming.name("ingress"), region=region, address_type="EXTERNAL", labels=labels
    )

    kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate).apply(
        lambda args: gke_kubeconfig(args[0], args[1], args[2])
    )
    return {
        "clusterName": cluster.name,
        "clusterEndpoint": cluster.endpoint.apply(lambda e: f"https://{e}"),
        "kubeconfig": pulumi.Output.secret(kubeconfig),
        "nodePool": pool.name,
        "network": network.name,
        "artifactRegistry": repository.repository_id.apply(lambda r: f"{region}-docker.pkg.dev/{project}/{r}"),
        "ingressIp": ingress_ip.address,
        "routerEndpoint": router_endpoint(settings.llm_hostname),
        "routerCluster": router_cluster(
            name=f"gcp-{region}",
            hostname=settings.llm_hostname,
            region=region,
            provider="gcp",
            cost_per_hour=settings.cost_per_hour,
            tokens_per_second=settings.tokens_per_second,
            model=settings.model,
            context_window=settings.context_window,
            secret_env=secret_env_name("gcp", region),
        ),
    }
