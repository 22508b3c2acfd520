"""The Memorystore for Redis 7 instance a stack ran before Valkey, kept while it moves over.

Declared exactly as it always was (Standard HA tier, one AUTH string, TLS, RDB snapshots), under
the same resource names, so that a stack that ran it sees no change to it until it chooses to
move: ``gcp.redis_migration`` ``beside`` and ``switched`` keep it, protected; ``retiring`` lifts
both protections, so that the next stage, ``none``, deletes it. Its one AUTH string stays in
its shared secret for the services that have not moved yet. Nothing new is ever created here.
(README, "Moving prod from Memorystore for Redis to Valkey".)
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.platforms.gcp.context import GcpContext
from infra.platforms.gcp.identities import Identities
from infra.platforms.gcp.network import Network
from infra.platforms.gcp.secrets import declare_secret

REDIS_VERSION = "REDIS_7_0"
AUTH_SECRET_ID = "redis-auth"  # noqa: S105 - a secret's id, not its value
# The stages that keep the old instance; the one where it still serves; the one that lifts its
# protection.
KEPT = ("beside", "switched", "retiring")
SERVING = "beside"
RETIRING = "retiring"


@dataclass(frozen=True)
class LegacyRedis:
    """The old instance and the id of the secret holding its AUTH string."""

    instance: gcp.redis.Instance
    auth_secret: pulumi.Output[str]


def kept(ctx: GcpContext) -> bool:
    """Whether this stack still has the old instance."""
    return ctx.config.gcp.redis_migration in KEPT


def serves(ctx: GcpContext) -> bool:
    """Whether the services' name (``redis.<zone>``) still points at the old instance."""
    return ctx.config.gcp.redis_migration == SERVING


def instance_name(ctx: GcpContext) -> str:
    """The instance's name, as it always was."""
    return ctx.name("redis")


def declare(ctx: GcpContext, network: Network, identities: Identities) -> LegacyRedis:
    """Declare the instance as it always was, and its AUTH string's secret, readable by the
    services with ``redis: true``. Protected, unless the stack is retiring it."""
    gcp_settings = ctx.config.gcp
    protected = gcp_settings.redis_migration != RETIRING
    instance = gcp.redis.Instance(
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
        deletion_protection=protected,
        labels=ctx.labels,
        opts=ctx.opts(protect=protected, depends_on=[network.peering]),
    )
    readers = {s.name: identities.services[s.name].member for s in ctx.config.services if s.redis}
    auth: pulumi.Output[str] = pulumi.Output.secret(instance.auth_string)
    return LegacyRedis(instance, declare_secret(ctx, AUTH_SECRET_ID, auth, readers))
