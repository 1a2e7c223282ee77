"""AWS: a VPC (public + private subnets, one NAT), an EKS cluster with a managed node group, an ECR repository
for the controller image, and Elastic IPs for the ingress load balancer. Exports what the router config needs."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.common.kubeconfig import eks_kubeconfig
from infra.common.naming import Naming
from infra.common.router import router_cluster, router_endpoint, secret_env_name
from infra.common.settings import CommonSettings
from infra.common.tags import standard_tags

VPC_CIDR = "10.40.0.0/16"
DEFAULT_INSTANCE_TYPE = "m7i.2xlarge"
DEFAULT_NODE_PRICE = 0.4032  # m7i.2xlarge on-demand, us-east-1/us-west-2 list price (USD/hour)
CLUSTER_POLICIES = ("arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",)
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
)


def _assume_role(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def _role(naming: Naming, component: str, service: str, policies: tuple[str, ...], tags: dict[str, str]):
    role = aws.iam.Role(
        naming.name(component),
        name=naming.name(component),
        assume_role_policy=_assume_role(service),
        tags=tags,
    )
    attachments = [
        aws.iam.RolePolicyAttachment(
            naming.name(f"{component}-{arn.rsplit('/', 1)[-1].lower()}"), role=role.name, policy_arn=arn
        )
        for arn in policies
    ]
    return role, attachments


def build() -> dict[str, Any]:
    config = pulumi.Config()
    region = pulumi.Config("aws").require("region")
    settings = CommonSettings.load(config, default_node_price=DEFAULT_NODE_PRICE)
    naming = Naming("llmr", pulumi.get_stack())
    zones = config.get_object("availabilityZones") or [f"{region}a", f"{region}b"]
    tags = standard_tags(project=pulumi.get_project(), stack=pulumi.get_stack(), cloud="aws", owner=settings.owner)
    cluster_name = naming.name("eks")

    vpc = aws.ec2.Vpc(
        naming.name("vpc"),
        cidr_block=VPC_CIDR,
        enable_dns_hostnames=True,
        enable_dns_support=True,
        tags={**tags, "Name": naming.name("vpc")},
    )
    igw = aws.ec2.InternetGateway(naming.name("igw"), vpc_id=vpc.id, tags={**tags, "Name": naming.name("igw")})
    blocks = list(ipaddress.ip_network(VPC_CIDR).subnets(new_prefix=20))
    public_rt = aws.ec2.RouteTable(
        naming.name("public-rt"),
        vpc_id=vpc.id,
        routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
        tags={**tags, "Name": naming.name("public-rt")},
    )
    public, private = [], []
    for index, zone in enumerate(zones):
        subnet = aws.ec2.Subnet(
            naming.name(f"public-{zone}"),
            vpc_id=vpc.id,
            availability_zone=zone,
            cidr_block=str(blocks[index]),
            map_public_ip_on_launch=True,
            tags={
                **tags,
                "Name": naming.name(f"public-{zone}"),
                "kubernetes.io/role/elb": "1",
                f"kubernetes.io/cluster/{cluster_name}": "shared",
            },
        )
        aws.ec2.RouteTableAssociation(naming.name(f"public-{zone}"), subnet_id=subnet.id, route_table_id=public_rt.id)
        public.append(subnet)
    nat_eip = aws.ec2.Eip(naming.name("nat"), domain="vpc", tags={**tags, "Name": naming.name("nat")})
    nat = aws.ec2.NatGateway(
        naming.name("nat"),
        allocation_id=nat_eip.id,
        subnet_id=public[0].id,
        tags={**tags, "Name": naming.name("nat")},
        opts=pulumi.ResourceOptions(depends_on=[igw]),
    )
    private_rt = aws.ec2.RouteTable(
        naming.name("private-rt"),
        vpc_id=vpc.id,
        routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
        tags={**tags, "Name": naming.name("private-rt")},
    )
    for index, zone in enumerate(zones):
        subnet = aws.ec2.Subnet(
            naming.name(f"private-{zone}"),
            vpc_id=vpc.id,
            availability_zone=zone,
            cidr_block=str(blocks[8 + index]),
            tags={
                **tags,
                "Name": naming.name(f"private-{zone}"),
                "kubernetes.io/role/internal-elb": "1",
                f"kubernetes.io/cluster/{cluster_name}": "shared",
            },
        )
        aws.ec2.RouteTableAssociation(naming.name(f"private-{zone}"), subnet_id=subnet.id, route_table_id=private_rt.id)
        private.append(subnet)

    cluster_role, cluster_attachments = _role(naming, "eks-cluster", "eks.amazonaws.com", CLUSTER_POLICIES, tags)
    node_role, node_attachments = _role(naming, "eks-node", "ec2.amazonaws.com", NODE_POLICIES, tags)
    cluster = aws.eks.Cluster(
        cluster_name,
        name=cluster_name,
        version=settings.kubernetes_version,
        role_arn=cluster_role.arn,
        vpc_config=aws.eks.ClusterVpcConfigArgs(
            subnet_ids=[s.id for s in private + public],
            endpoint_public_access=True,
            endpoint_private_access=True,
        ),
        access_config=aws.eks.ClusterAccessConfigArgs(
            authentication_mode="API", bootstrap_cluster_creator_admin_permissions=True
        ),
        enabled_cluster_log_types=["api", "audit", "authenticator"],
        tags=tags,
        opts=pulumi.ResourceOptions(depends_on=cluster_attachments),
    )
    nodes = aws.eks.NodeGroup(
        naming.name("nodes"),
        cluster_name=cluster.name,
        node_group_name=naming.name("nodes"),
        node_role_arn=node_role.arn,
        subnet_ids=[s.id for s in private],
        instance_types=[config.get("instanceType") or DEFAULT_INSTANCE_TYPE],
        scaling_config=aws.eks.NodeGroupScalingConfigArgs(
            desired_size=settings.node_count, min_size=settings.min_nodes, max_size=settings.max_nodes
        ),
        update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
        labels={"workload": "llm"},
        tags=tags,
        opts=pulumi.ResourceOptions(depends_on=node_attachments),
    )
    registry = aws.ecr.Repository(
        naming.name("llm-router"),
        name=f"{naming.prefix}/llm-router",
        image_tag_mutability="IMMUTABLE",
        image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
        tags=tags,
    )
    aws.ecr.LifecyclePolicy(
        naming.name("llm-router-untagged"),
        repository=registry.name,
        policy=json.dumps(
            {
                "rules": [
                    {
                        "rulePriority": 1,
                        "description": "expire untagged images after 14 days",
                        "selection": {
                            "tagStatus": "untagged",
                            "countType": "sinceImagePushed",
                            "countUnit": "days",
                            "countNumber": 14,
                        },
                        "action": {"type": "expire"},
                    }
                ]
            }
        ),
    )
    # The ingress-nginx NLB takes these (service.beta.kubernetes.io/aws-load-balancer-eip-allocations), so
    # the DNS record for llmHostname can be created before the load balancer exists.
    ingress_eips = [
        aws.ec2.Eip(naming.name(f"ingress-{zone}"), domain="vpc", tags={**tags, "Name": naming.name(f"ingress-{zone}")})
        for zone in zones
    ]

    kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint, cluster.certificate_authority.data).apply(
        lambda args: eks_kubeconfig(args[0], args[1], args[2], region)
    )
    return {
        "clusterName": cluster.name,
        "clusterEndpoint": cluster.endpoint,
        "kubeconfig": pulumi.Output.secret(kubeconfig),
        "nodeGroup": nodes.node_group_name,
        "vpcId": vpc.id,
        "ecrRepositoryUrl": registry.repository_url,
        "ingressEipAllocations": pulumi.Output.all(*[e.allocation_id for e in ingress_eips]).apply(",".join),
        "ingressIps": pulumi.Output.all(*[e.public_ip for e in ingress_eips]),
        "routerEndpoint": router_endpoint(settings.llm_hostname),
        "routerCluster": router_cluster(
            name=f"aws-{region}",
            hostname=settings.llm_hostname,
            region=region,
            provider="aws",
            cost_per_hour=settings.cost_per_hour,
            tokens_per_second=settings.tokens_per_second,
            model=settings.model,
            context_window=settings.context_window,
            secret_env=secret_env_name("aws", region),
        ),
    }
