"""Memorystore for Redis 7: Standard (HA) tier, AUTH, TLS in transit, RDB snapshots.

Memorystore has one AUTH string and no ACL users, so the per-service users and key prefixes
that dev enforces are a naming convention in prod (see the README).
"""

from __future__ import annotations

import pulumi_gcp as gcp

from infra.platforms.gcp.context import GcpContext
from infra.platforms.gcp.network import Network

REDIS_VERSION = "REDIS_7_0"  # the Redis line dev and the tests run


def instance_name(ctx: GcpContext) -> str:
    """The instance's fixed name; the backup workflow addresses the Memorystore API by it."""
    return ctx.name("redis")


def declare(ctx: GcpContext, network: Network) -> gcp.redis.Instance:
    """Declare the instance on the private services range, protected from deletion."""
    gcp_settings = ctx.config.gcp
    return gcp.redis.Instance(
        "redis",
        name=instance_name(ctx),
        display_name=f"{ctx.prefix} Redis",
        tier="STANDARD_HA",
        memory_size_gb=gcp_settings.redis_memory_size_gb,
        region=ctx.region,
        redis_version=REDIS_VERSION,
        auth_enabled=True,
        transit_encryption_mode="SERVER_AUTHENTICATION",
        connect_mode="PRIVATE_SERVICE_ACCESS",
        authorized_network=network.vpc.id,
        reserved_ip_range=network.private_range.name,
        redis_configs={"maxmemory-policy": ctx.config.redis.maxmemory_policy},
        persistence_config=gcp.redis.InstancePersistenceConfigArgs(
            persistence_mode="RDB",
            rdb_snapshot_period=gcp_settings.redis_snapshot_period,
        ),
        maintenance_policy=gcp.redis.InstanceMaintenancePolicyArgs(
            weekly_maintenance_windows=[
                gcp.redis.InstanceMaintenancePolicyWeeklyMaintenanceWindowArgs(
                    day=ctx.maintenance_day_name,
                    start_time=gcp.redis.InstanceMaintenancePolicyWeeklyMaintenanceWindowStartTimeArgs(
                        hours=gcp_settings.maintenance_hour, minutes=0, seconds=0, nanos=0
                    ),
                )
            ]
        ),
        deletion_protection=True,
        labels=ctx.labels,
        opts=ctx.opts(protect=True, depends_on=[network.peering]),
    )
