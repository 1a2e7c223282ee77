"""Azure: a resource group, a VNet with a node subnet, an AKS cluster (Azure CNI overlay, OIDC issuer,
workload identity, autoscaled system pool), an ACR the kubelet may pull from, and a static public IP for the
ingress load balancer. Exports what the router config needs."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_azure_native as azure

from infra.common.naming import Naming
from infra.common.router import router_cluster, router_endpoint, secret_env_name
from infra.common.settings import CommonSettings
from infra.common.tags import standard_tags

VNET_CIDR = "10.60.0.0/16"
NODES_CIDR = "10.60.0.0/20"
POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.61.0.0/16"
DNS_SERVICE_IP = "10.61.0.10"
DEFAULT_VM_SIZE = "Standard_D8s_v5"
DEFAULT_NODE_PRICE = 0.384  # Standard_D8s_v5 pay-as-you-go, East US list price (USD/hour)
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"  # built-in role definition ids
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"


def _role(subscription: pulumi.Output[str], role_id: str) -> pulumi.Output[str]:
    return subscription.apply(
        lambda s: f"/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{role_id}"
    )


def _kubelet_object_id(profile: Mapping[str, Any] | None) -> str:
    """The kubelet's managed identity (it pulls images), known once the cluster exists."""
    identity = (profile or {}).get("kubeletidentity")
    if identity is None or not identity.object_id:
        raise ValueError("AKS reported no kubelet identity")
    return str(identity.object_id)


def _cluster_principal_id(identity: Any) -> str:
    """The cluster's system-assigned identity (it manages load balancers and their IPs)."""
    if identity is None or not identity.principal_id:
        raise ValueError("AKS reported no system-assigned identity")
    return str(identity.principal_id)


def build() -> dict[str, Any]:
    config = pulumi.Config()
    location = pulumi.Config("azure-native").require("location")
    settings = CommonSettings.load(config, default_node_price=DEFAULT_NODE_PRICE)
    naming = Naming("llmr", pulumi.get_stack())
    tags = standard_tags(project=pulumi.get_project(), stack=pulumi.get_stack(), cloud="azure", owner=settings.owner)
    subscription = azure.authorization.get_client_config_output().subscription_id

    group = azure.resources.ResourceGroup(
        naming.name("rg"), resource_group_name=naming.name("rg"), location=location, tags=tags
    )
    vnet = azure.network.VirtualNetwork(
        naming.name("vnet"),
        virtual_network_name=naming.name("vnet"),
        resource_group_name=group.name,
        location=location,
        address_space=azure.network.AddressSpaceArgs(address_prefixes=[VNET_CIDR]),
        tags=tags,
    )
    subnet = azure.network.Subnet(
        naming.name("nodes"),
        subnet_name="nodes",
        resource_group_name=group.name,
        virtual_network_name=vnet.name,
        address_prefix=NODES_CIDR,
    )
    registry = azure.containerregistry.Registry(
        naming.name("acr"),
        registry_name=naming.alnum("acr"),
        resource_group_name=group.name,
        location=location,
        sku=azure.containerregistry.SkuArgs(name="Standard"),
        admin_user_enabled=False,
        tags=tags,
    )
    cluster = azure.containerservice.ManagedCluster(
        naming.name("aks"),
        resource_name_=naming.name("aks"),
        resource_group_name=group.name,
        location=location,
        dns_prefix=naming.name("aks"),
        kubernetes_version=settings.kubernetes_version,
        enable_rbac=True,
        identity=azure.containerservice.ManagedClusterIdentityArgs(
            type=azure.containerservice.ResourceIdentityType.SYSTEM_ASSIGNED
        ),
        agent_pool_profiles=[
            azure.containerservice.ManagedClusterAgentPoolProfileArgs(
                name="system",
                mode="System",
                os_type="Linux",
                type="VirtualMachineScaleSets",
                vm_size=config.get("vmSize") or DEFAULT_VM_SIZE,
                count=settings.node_count,
                enable_auto_scaling=True,
                min_count=settings.min_nodes,
                max_count=settings.max_nodes,
                vnet_subnet_id=subnet.id,
                node_labels={"workload": "llm"},
                tags=tags,
            )
        ],
        network_profile=azure.containerservice.ContainerServiceNetworkProfileArgs(
            network_plugin="azure",
            network_plugin_mode="overlay",
            network_policy="cilium",
            network_dataplane="cilium",
            pod_cidr=POD_CIDR,
            service_cidr=SERVICE_CIDR,
            dns_service_ip=DNS_SERVICE_IP,
            load_balancer_sku="standard",
        ),
        oidc_issuer_profile=azure.containerservice.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
        security_profile=azure.containerservice.ManagedClusterSecurityProfileArgs(
            workload_identity=azure.containerservice.ManagedClusterSecurityProfileWorkloadIdentityArgs(enabled=True)
        ),
        tags=tags,
    )
    azure.authorization.RoleAssignment(
        naming.name("aks-acr-pull"),
        principal_id=cluster.identity_profile.apply(_kubelet_object_id),
        principal_type="ServicePrincipal",
        role_definition_id=_role(subscription, ACR_PULL),
        scope=registry.id,
    )
    # ingress-nginx's LoadBalancer Service takes this IP (service.beta.kubernetes.io/azure-load-balancer-
    # resource-group + loadBalancerIP); AKS needs Network Contributor on the group to attach it.
    ingress_ip = azure.network.PublicIPAddress(
        naming.name("ingress"),
        public_ip_address_name=naming.name("ingress"),
        resource_group_name=group.name,
        location=location,
        public_ip_allocation_method="Static",
        sku=azure.network.PublicIPAddressSkuArgs(name="Standard"),
        tags=tags,
    )
    azure.authorization.RoleAssignment(
        naming.name("aks-network"),
        principal_id=cluster.identity.apply(_cluster_principal_id),
        principal_type="ServicePrincipal",
        role_definition_id=_role(subscription, NETWORK_CONTRIBUTOR),
        scope=group.id,
    )

    credentials = azure.containerservice.list_managed_cluster_user_credentials_output(
        resource_group_name=group.name, resource_name=cluster.name
    )
    kubeconfig = credentials.kubeconfigs.apply(lambda k: base64.b64decode(k[0].value).decode())
    return {
        "clusterName": cluster.name,
        "clusterEndpoint": cluster.fqdn.apply(lambda f: f"https://{f}:443"),
        "kubeconfig": pulumi.Output.secret(kubeconfig),
        "resourceGroup": group.name,
        "acrLoginServer": registry.login_server,
        "ingressIp": ingress_ip.ip_address,
        "routerEndpoint": router_endpoint(settings.llm_hostname),
        "routerCluster": router_cluster(
            name=f"azure-{location}",
            hostname=settings.llm_hostname,
            region=location,
            provider="azure",
            cost_per_hour=settings.cost_per_hour,
            tokens_per_second=settings.tokens_per_second,
            model=settings.model,
            context_window=settings.context_window,
            secret_env=secret_env_name("azure", location),
        ),
    }
