"""A private Cloud DNS zone on the VPC: the stable names services connect to.

``infra.render.endpoints`` puts ``postgres.<zone>``, ``redis.<zone>`` and ``rabbitmq.<zone>``
(and ``postgres-replicas.<zone>``, every in-region read replica's address, when the stack has
replicas) into every service's connection settings; these records make those names resolve
inside the VPC only, so a replaced instance only changes a record, never a service's
configuration.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.platforms.gcp.context import GcpContext
from infra.platforms.gcp.network import Network

TTL_SECONDS = 60


def zone_name(dns_zone: str) -> str:
    """The zone's DNS name with exactly one trailing dot, as Cloud DNS requires."""
    return dns_zone.rstrip(".") + "."


def declare(
    ctx: GcpContext,
    network: Network,
    addresses: dict[str, pulumi.Input[str] | list[pulumi.Input[str]]],
) -> gcp.dns.ManagedZone:
    """Declare the private zone and one A record set per name (``addresses``: label -> IP, or
    several IPs for a name clients spread over, e.g. ``postgres-replicas``)."""
    dns_name = zone_name(ctx.config.gcp.dns_zone)
    zone = gcp.dns.ManagedZone(
        "private-zone",
        name=ctx.name("private"),
        dns_name=dns_name,
        description="Private names of the persistence servers",
        visibility="private",
        private_visibility_config=gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
            networks=[
                gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=network.vpc.id)
            ]
        ),
        labels=ctx.labels,
        opts=ctx.opts(),
    )
    for label, address in addresses.items():
        gcp.dns.RecordSet(
            f"dns-{label}",
            managed_zone=zone.name,
            name=f"{label}.{dns_name}",
            type="A",
            ttl=TTL_SECONDS,
            rrdatas=address if isinstance(address, list) else [address],
            opts=ctx.opts(),
        )
    return zone
