"""The optional verification instance (``gcp.verify_instance_tier``).

By default the backup job restores its verifications into scratch databases on the main
instance, at the scheduled hour. A large fleet or a busy instance may not want that load:
then a small zonal instance takes the restores instead. It holds only scratch databases
(the job converges the role model there with throwaway passwords before verifying), so it
has no automated backups of its own, but it is protected like every Cloud SQL instance.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.credentials import Credentials
from infra.platforms.gcp.context import GcpContext
from infra.platforms.gcp.network import Network
from infra.platforms.gcp.sql import DATABASE_VERSION, admin_user

DISK_GB = 20


@dataclass(frozen=True)
class VerifyInstance:
    """The instance and its admin login (the same password as the main instance's)."""

    instance: gcp.sql.DatabaseInstance
    admin: gcp.sql.User


def instance_name(ctx: GcpContext) -> str:
    return ctx.name("pg-verify")


def declare(
    ctx: GcpContext, network: Network, credentials: pulumi.Output[Credentials]
) -> VerifyInstance | None:
    """Declare the instance when a tier is configured; None keeps verification on the main one."""
    tier = ctx.config.gcp.verify_instance_tier
    if not tier:
        return None
    instance = gcp.sql.DatabaseInstance(
        "postgres-verify",
        name=instance_name(ctx),
        database_version=DATABASE_VERSION,
        region=ctx.region,
        deletion_protection=True,
        settings=gcp.sql.DatabaseInstanceSettingsArgs(
            tier=tier,
            edition="ENTERPRISE",
            availability_type="ZONAL",
            disk_type="PD_SSD",
            disk_size=DISK_GB,
            disk_autoresize=True,
            deletion_protection_enabled=True,
            user_labels={**ctx.labels, "purpose": "backup-verification"},
            ip_configuration=gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs(
                ipv4_enabled=False,
                private_network=network.vpc.id,
                allocated_ip_range=network.private_range.name,
                ssl_mode="ENCRYPTED_ONLY",
            ),
            # Scratch restores only; the policy tests still want automated backups on every
            # instance, and one small daily backup is cheaper than an exception to that rule.
            backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
                enabled=True,
                point_in_time_recovery_enabled=True,
                location=ctx.config.gcp.sql_backup_location,
                transaction_log_retention_days=1,
            ),
        ),
        opts=ctx.opts(protect=True, depends_on=[network.peering]),
    )
    admin = admin_user(ctx, "postgres-verify-admin", instance, credentials)
    return VerifyInstance(instance=instance, admin=admin)
