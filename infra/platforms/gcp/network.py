"""The private network: custom-mode VPC, one subnet, private services access, Cloud NAT, firewall.

Nothing here has a public address: servers are reached on private IPs only, and the VM's
outbound package downloads leave through Cloud NAT.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi_gcp as gcp

from infra.platforms.gcp.context import GcpContext
from infra.render.endpoints import AMQP_PORT, MANAGEMENT_PORT

RABBITMQ_TAG = "rabbitmq"
# Google's Identity-Aware Proxy forwards TCP from this range only (SSH for operators).
IAP_RANGE = "35.235.240.0/20"


@dataclass(frozen=True)
class Network:
    """The pieces the data services attach to."""

    vpc: gcp.compute.Network
    subnet: gcp.compute.Subnetwork
    private_range: gcp.compute.GlobalAddress
    peering: gcp.servicenetworking.Connection


def declare(ctx: GcpContext) -> Network:
    """Declare the VPC and everything that makes it private."""
    vpc = gcp.compute.Network(
        "vpc",
        name=ctx.name("vpc"),
        auto_create_subnetworks=False,
        routing_mode="REGIONAL",
        delete_default_routes_on_create=False,
        opts=ctx.opts(),
    )
    subnet = gcp.compute.Subnetwork(
        "subnet",
        name=ctx.name("services"),
        network=vpc.id,
        region=ctx.region,
        ip_cidr_range=ctx.config.gcp.subnet_cidr,
        private_ip_google_access=True,
        log_config=gcp.compute.SubnetworkLogConfigArgs(
            aggregation_interval="INTERVAL_5_SEC",
            flow_sampling=0.5,
            metadata="INCLUDE_ALL_METADATA",
        ),
        opts=ctx.opts(),
    )
    private_range = gcp.compute.GlobalAddress(
        "private-services-range",
        name=ctx.name("private-services"),
        purpose="VPC_PEERING",
        address_type="INTERNAL",
        prefix_length=ctx.config.gcp.private_services_prefix_length,
        network=vpc.id,
        labels=ctx.labels,
        opts=ctx.opts(),
    )
    peering = gcp.servicenetworking.Connection(
        "private-services-access",
        network=vpc.id,
        service="servicenetworking.googleapis.com",
        reserved_peering_ranges=[private_range.name],
        opts=ctx.opts(),
    )
    _nat(ctx, vpc, subnet)
    _firewall(ctx, vpc)
    return Network(vpc=vpc, subnet=subnet, private_range=private_range, peering=peering)


def _nat(ctx: GcpContext, vpc: gcp.compute.Network, subnet: gcp.compute.Subnetwork) -> None:
    """Outbound only, for the subnet only: the VM installs packages without an external IP."""
    router = gcp.compute.Router(
        "router", name=ctx.name("router"), network=vpc.id, region=ctx.region, opts=ctx.opts()
    )
    gcp.compute.RouterNat(
        "nat",
        name=ctx.name("nat"),
        router=router.name,
        region=ctx.region,
        nat_ip_allocate_option="AUTO_ONLY",
        source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
        subnetworks=[
            gcp.compute.RouterNatSubnetworkArgs(
                name=subnet.id, source_ip_ranges_to_nats=["ALL_IP_RANGES"]
            )
        ],
        log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
        opts=ctx.opts(),
    )


def _firewall(ctx: GcpContext, vpc: gcp.compute.Network) -> None:
    """AMQP from the services' subnet, SSH and the management API through IAP (the deploy
    applies definitions through it), everything else denied and logged."""
    logged = gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA")
    gcp.compute.Firewall(
        "allow-amqp-from-subnet",
        name=ctx.name("allow-amqp"),
        network=vpc.id,
        direction="INGRESS",
        priority=1000,
        source_ranges=[ctx.config.gcp.subnet_cidr],
        target_tags=[RABBITMQ_TAG],
        allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(AMQP_PORT)])],
        log_config=logged,
        opts=ctx.opts(),
    )
    gcp.compute.Firewall(
        "allow-ssh-from-iap",
        name=ctx.name("allow-iap-ssh"),
        network=vpc.id,
        direction="INGRESS",
        priority=1000,
        source_ranges=[IAP_RANGE],
        target_tags=[RABBITMQ_TAG],
        allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=["22"])],
        log_config=logged,
        opts=ctx.opts(),
    )
    gcp.compute.Firewall(
        "allow-management-from-iap",
        name=ctx.name("allow-iap-management"),
        network=vpc.id,
        direction="INGRESS",
        priority=1000,
        source_ranges=[IAP_RANGE],
        target_tags=[RABBITMQ_TAG],
        # The deploy applies the services' definitions to the running broker through an IAP
        # tunnel to the management API (infra.platforms.gcp.rabbitmq_vm.live_config).
        allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(MANAGEMENT_PORT)])],
        log_config=logged,
        opts=ctx.opts(),
    )
    gcp.compute.Firewall(
        "deny-all-ingress",
        name=ctx.name("deny-all-ingress"),
        network=vpc.id,
        direction="INGRESS",
        priority=65534,
        source_ranges=["0.0.0.0/0"],
        denies=[gcp.compute.FirewallDenyArgs(protocol="all")],
        log_config=logged,
        opts=ctx.opts(),
    )
