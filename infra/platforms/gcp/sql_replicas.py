"""Cloud SQL read replicas of the main instance (``postgres.replicas``, ``gcp.dr_replica_region``).

Why: every read the services make through ``READONLY_DATABASE_URL`` competed with their writes
on the one primary. With ``postgres.replicas`` N > 0 the stack declares N read replicas in the
main region, each in a zone other than the primary's preferred one (``sql.primary_zone``),
spread over the region's other zones, so the loss of one zone never takes the primary and every
replica at once. Their private IPs are the A records of ``postgres-replicas.<dns_zone>``, the
host of every service's read-only URL (``infra.render.endpoints``).

``gcp.dr_replica_region`` adds one more replica in another region. It serves no reads
(cross-region latency): it is the copy the disaster-recovery runbook promotes, which a stack in
that region then adopts (``gcp.sql_adopt_instance``, README "Disaster-recovery runbook (prod)").

A replica is a full copy of the primary: the same version, edition, tier, disk and database
flags (Cloud SQL refuses a replica whose ``max_connections`` is below the primary's), on private
IP only with TLS required, protected twice over like every stateful resource. It has no backups
of its own (Cloud SQL backs up the primary) and no users (they replicate from the primary).
Managed Connection Pooling is not turned on for them: Google's documentation of the feature
does not say that read replicas support it, so the read-only URL reaches them directly on 5432.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi_gcp as gcp

from infra.platforms.gcp import sql
from infra.platforms.gcp.context import GcpContext
from infra.platforms.gcp.network import Network
from infra.platforms.gcp.rabbitmq_cluster import zone_suffixes

READ_REPLICA = "READ_REPLICA_INSTANCE"


@dataclass(frozen=True)
class Replicas:
    """The in-region read replicas (in order, replica 1 first) and the DR replica, if any."""

    readers: list[gcp.sql.DatabaseInstance]
    disaster_recovery: gcp.sql.DatabaseInstance | None

    @property
    def all(self) -> list[gcp.sql.DatabaseInstance]:
        """Every replica, the DR one last."""
        return self.readers + ([self.disaster_recovery] if self.disaster_recovery else [])


def replica_name(ctx: GcpContext, index: int) -> str:
    """Replica ``index``'s (1-based) instance name, e.g. ``persistence-prod-pg-replica-1``."""
    return ctx.name(f"pg-replica-{index}")


def dr_replica_name(ctx: GcpContext) -> str:
    """The DR replica's name, e.g. ``persistence-prod-pg-dr``: what ``gcp.sql_adopt_instance``
    of the stack that adopts it names."""
    return ctx.name("pg-dr")


def names(ctx: GcpContext) -> list[str]:
    """Every replica's instance name (the alerts watch them all), the DR one last."""
    found = [replica_name(ctx, i) for i in range(1, ctx.config.postgres.replicas + 1)]
    return found + ([dr_replica_name(ctx)] if ctx.config.gcp.dr_replica_region else [])


def replica_zones(ctx: GcpContext) -> list[str]:
    """Each in-region replica's zone: the region's zones other than the primary's, in turn."""
    others = zone_suffixes(ctx.region, ctx.config.gcp.zone_suffix)[1:]
    return [f"{ctx.region}-{others[i % len(others)]}" for i in range(ctx.config.postgres.replicas)]


def declare(ctx: GcpContext, network: Network, primary: sql.SqlInstance) -> Replicas:
    """Declare the in-region replicas and the DR replica the config asks for (none by default)."""
    readers = [
        _replica(
            ctx,
            f"postgres-replica-{index}",
            replica_name(ctx, index),
            network,
            primary,
            region=ctx.region,
            zone=zone,
            role="read-replica",
        )
        for index, zone in enumerate(replica_zones(ctx), start=1)
    ]
    dr_region = ctx.config.gcp.dr_replica_region
    disaster_recovery = (
        _replica(
            ctx,
            "postgres-dr-replica",
            dr_replica_name(ctx),
            network,
            primary,
            region=dr_region,
            zone=None,
            role="dr-replica",
        )
        if dr_region
        else None
    )
    return Replicas(readers=readers, disaster_recovery=disaster_recovery)


def _replica(
    ctx: GcpContext,
    resource_name: str,
    name: str,
    network: Network,
    primary: sql.SqlInstance,
    *,
    region: str,
    zone: str | None,
    role: str,
) -> gcp.sql.DatabaseInstance:
    """One read replica of the main instance (``zone`` None: Cloud SQL's choice in ``region``)."""
    gcp_settings = ctx.config.gcp
    return gcp.sql.DatabaseInstance(
        resource_name,
        name=name,
        master_instance_name=primary.instance.name,
        instance_type=READ_REPLICA,
        database_version=sql.DATABASE_VERSION,
        region=region,
        deletion_protection=True,
        settings=gcp.sql.DatabaseInstanceSettingsArgs(
            edition=gcp_settings.sql_edition,
            tier=gcp_settings.sql_tier,
            availability_type="ZONAL",
            disk_size=gcp_settings.sql_disk_size_gb,
            database_flags=sql.database_flags(ctx),
            user_labels={**ctx.labels, "role": role},
            maintenance_window=sql.maintenance_window(ctx),
            **sql.storage_and_network(network),
            **sql.location_preference(zone),
        ),
        # After the primary's admin: a replica copies the primary as it is when it is created.
        opts=ctx.opts(protect=True, depends_on=[network.peering, primary.admin]),
    )
