"""The optional verification instance (``gcp.verify_instance_tier``).

By default the backup job restores its verifications into scratch databases on the main
instance, at the scheduled hour. A large fleet or a busy instance may not want that load:
then a small zonal instance takes the restores instead. It holds only scratch databases
(the job converges the role model there with throwaway passwords before verifying), so it
has no automated backups of its own, but it is protected like every Cloud SQL instance.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.platforms.gcp.context import GcpContext
from infra.platforms.gcp.network import Network
from infra.platforms.gcp.sql import SqlInstance, declare_instance

DISK_GB = 20


def instance_name(ctx: GcpContext) -> str:
    return ctx.name("pg-verify")


def declare(
    ctx: GcpContext, network: Network, admin_password: pulumi.Output[str]
) -> SqlInstance | None:
    """Declare the instance when a tier is configured; None keeps verification on the main one.

    Its admin login has the same password as the main instance's."""
    tier = ctx.config.gcp.verify_instance_tier
    if not tier:
        return None
    return declare_instance(
        ctx,
        "postgres-verify",
        name=instance_name(ctx),
        network=network,
        admin_password=admin_password,
        tier=tier,
        availability_type="ZONAL",
        disk_size=DISK_GB,
        user_labels={**ctx.labels, "purpose": "backup-verification"},
        # Scratch restores only; the policy tests still want automated backups on every
        # instance, and one small daily backup is cheaper than an exception to that rule.
        backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
            enabled=True,
            point_in_time_recovery_enabled=True,
            location=ctx.config.gcp.sql_backup_location,
            transaction_log_retention_days=1,
        ),
    )
