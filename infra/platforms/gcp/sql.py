"""Cloud SQL for PostgreSQL 15: regional HA, private IP only, TLS required, backups with PITR,
and a pooled endpoint (Managed Connection Pooling, Enterprise Plus) for the services' logins.

Per-service databases and roles are created by the same provisioning resource as dev. It runs
on the deploying machine and reaches the private instance through the Cloud SQL Auth Proxy the
runner starts (``gcp.provisioning_host``/``gcp.provisioning_port``), as the built-in admin user.
The proxy's local listener speaks plaintext on loopback and encrypts to the instance itself,
which is why ``gcp.provisioning_sslmode`` defaults to ``disable`` and only allows it on loopback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from infra.config.model import StackConfig
from infra.platforms.gcp.context import GcpContext
from infra.platforms.gcp.network import Network
from infra.provisioning import AdminEndpoint, ServiceDatabase
from infra.pulumi_credentials import StackPasswords
from infra.render.pgbouncer import pooled_databases

DATABASE_VERSION = "POSTGRES_15"  # the major version dev runs
BACKUP_START_TIME = "01:00"  # UTC; the scheduled exports run from the backup schedule instead


@dataclass(frozen=True)
class SqlInstance:
    """A Cloud SQL instance and its built-in admin login."""

    instance: gcp.sql.DatabaseInstance
    admin: gcp.sql.User


def instance_name(ctx: GcpContext) -> str:
    """The instance's fixed name; the backup workflow addresses the Admin API by it. A stack
    that adopted a promoted replica (``gcp.sql_adopt_instance``) keeps that instance's name."""
    return ctx.config.gcp.sql_adopt_instance or ctx.name("pg")


@dataclass(frozen=True)
class Adoption:
    """How the main instance and its admin are declared when the stack adopts an existing
    instance (``gcp.sql_adopt_instance``): imported by id, never created. While
    ``gcp.sql_adopt_importing``, what the program cannot match yet (the promoted replica's
    settings, the admin's password) is left as it is, so the import succeeds; the next run
    converges it in place."""

    instance_id: str
    admin_id: str
    importing: bool


def adoption(ctx: GcpContext) -> Adoption | None:
    """The adoption of ``gcp.sql_adopt_instance``, or None (the stack's own instance)."""
    adopted = ctx.config.gcp.sql_adopt_instance
    if not adopted:
        return None
    return Adoption(
        # The provider's import ids: projects/{project}/instances/{name}, and for a
        # PostgreSQL user {project}/{instance}/{name}.
        instance_id=f"projects/{ctx.project}/instances/{adopted}",
        admin_id=f"{ctx.project}/{adopted}/{ctx.config.postgres.admin_user}",
        importing=ctx.config.gcp.sql_adopt_importing,
    )


def primary_zone(ctx: GcpContext) -> str | None:
    """The main instance's preferred zone: ``ctx.zone`` once the stack has read replicas, so
    that they can be placed in the region's other zones (``sql_replicas``); None (Cloud SQL's
    choice, as before replicas existed) without them."""
    return ctx.zone if ctx.config.postgres.replicas > 0 else None


def storage_and_network(network: Network) -> dict[str, Any]:
    """Settings every instance of the stack has (main, verification, replicas): SSD that
    grows, the API's deletion protection, private IP only with TLS."""
    return {
        "disk_type": "PD_SSD",
        "disk_autoresize": True,
        "deletion_protection_enabled": True,
        # Private IP on the stack's network only, no public IPv4, TLS required.
        "ip_configuration": gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs(
            ipv4_enabled=False,
            private_network=network.vpc.id,
            allocated_ip_range=network.private_range.name,
            ssl_mode="ENCRYPTED_ONLY",
        ),
    }


def maintenance_window(ctx: GcpContext) -> gcp.sql.DatabaseInstanceSettingsMaintenanceWindowArgs:
    """The stack's maintenance window (``gcp.maintenance_day``/``_hour``), stable track."""
    return gcp.sql.DatabaseInstanceSettingsMaintenanceWindowArgs(
        day=ctx.config.gcp.maintenance_day,
        hour=ctx.config.gcp.maintenance_hour,
        update_track="stable",
    )


def database_flags(ctx: GcpContext) -> list[gcp.sql.DatabaseInstanceSettingsDatabaseFlagArgs]:
    """Slow-statement logging, pg_stat_statements, IAM database authentication, and the same
    fixed ``max_connections`` as dev (the connections alert is a share of it)."""
    flags = {
        "max_connections": str(ctx.config.postgres.max_connections),
        "log_min_duration_statement": str(ctx.config.postgres.slow_statement_ms),
        "pg_stat_statements.track": "all",
        "cloudsql.iam_authentication": "on",
        "log_connections": "on",
        "log_disconnections": "on",
        "log_lock_waits": "on",
    }
    return [
        gcp.sql.DatabaseInstanceSettingsDatabaseFlagArgs(name=name, value=value)
        for name, value in flags.items()
    ]


def managed_pool_size(config: StackConfig) -> int | None:
    """Cloud SQL's one ``max_pool_size`` for every pool: the smallest pooled login's
    ``connection_limits``, so that no pool asks PostgreSQL for more server connections than its
    role's CONNECTION LIMIT allows (the pooler makes the extra clients wait, where the server
    would refuse them). PgBouncer in dev sizes each login's pool to its own limit; Cloud SQL has
    one size for all. None without a service (Cloud SQL's default stands)."""
    limits = [login.limit for db in pooled_databases(config) for login in db.logins]
    return min(limits) if limits else None


def connection_pool_configs(
    ctx: GcpContext,
) -> list[gcp.sql.DatabaseInstanceSettingsConnectionPoolConfigArgs] | None:
    """Cloud SQL Managed Connection Pooling with ``postgres.pooler``'s settings, or None.

    Clients reach it on the instance's own address, port 6432 (``endpoints.MANAGED_POOLER_PORT``).
    ``max_pool_size`` is ``managed_pool_size``; the idle and wait timeouts keep Cloud SQL's
    defaults.
    """
    pooler = ctx.config.postgres.pooler
    if not pooler.enabled:
        return None
    flags = {
        "pool_mode": pooler.pool_mode,
        "max_client_connections": str(pooler.max_client_connections),
        "max_prepared_statements": str(pooler.max_prepared_statements),
    }
    pool_size = managed_pool_size(ctx.config)
    if pool_size is not None:
        flags["max_pool_size"] = str(pool_size)
    return [
        gcp.sql.DatabaseInstanceSettingsConnectionPoolConfigArgs(
            connection_pooling_enabled=True,
            flags=[
                gcp.sql.DatabaseInstanceSettingsConnectionPoolConfigFlagArgs(name=name, value=value)
                for name, value in flags.items()
            ],
        )
    ]


def declare_instance(
    ctx: GcpContext,
    resource_name: str,
    *,
    name: str,
    network: Network,
    admin_password: pulumi.Output[str],
    adopted: Adoption | None = None,
    **settings: Any,
) -> SqlInstance:
    """A PostgreSQL 15 instance on private IP only, TLS only, protected twice over, with its
    admin (``<resource_name>-admin``); ``settings`` add to or override the shared ones.
    ``adopted``: the instance exists already and is imported (see ``Adoption``)."""
    shared: dict[str, Any] = {
        # The verification instance's; the main instance's is gcp.sql_edition.
        "edition": "ENTERPRISE",
        **storage_and_network(network),
    }
    importing = adopted is not None and adopted.importing
    instance = gcp.sql.DatabaseInstance(
        resource_name,
        name=name,
        database_version=DATABASE_VERSION,
        region=ctx.region,
        deletion_protection=True,
        settings=gcp.sql.DatabaseInstanceSettingsArgs(**{**shared, **settings}),
        opts=ctx.opts(
            protect=True,
            depends_on=[network.peering],
            import_=adopted.instance_id if adopted else None,
            ignore_changes=["settings"] if importing else None,
        ),
    )
    admin = admin_user(
        ctx,
        f"{resource_name}-admin",
        instance,
        admin_password,
        import_=adopted.admin_id if adopted else None,
        # Neither is readable from the API: the import takes them as they are.
        ignore_changes=["password", "deletionPolicy"] if importing else None,
    )
    return SqlInstance(instance=instance, admin=admin)


def declare(ctx: GcpContext, network: Network, admin_password: pulumi.Output[str]) -> SqlInstance:
    """Declare the main instance (regional HA, PITR, the pooled endpoint when
    ``postgres.pooler.enabled``) and the admin that provisions services."""
    gcp_settings = ctx.config.gcp
    return declare_instance(
        ctx,
        "postgres",
        name=instance_name(ctx),
        network=network,
        admin_password=admin_password,
        adopted=adoption(ctx),
        # Enterprise Plus when the pooler is on (checked with the config: its tiers differ).
        edition=gcp_settings.sql_edition,
        tier=gcp_settings.sql_tier,
        connection_pool_configs=connection_pool_configs(ctx),
        availability_type="REGIONAL",
        disk_size=gcp_settings.sql_disk_size_gb,
        user_labels=ctx.labels,
        backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
            enabled=True,
            point_in_time_recovery_enabled=True,
            start_time=BACKUP_START_TIME,
            location=gcp_settings.sql_backup_location,
            transaction_log_retention_days=gcp_settings.sql_log_retention_days,
            backup_retention_settings=(
                gcp.sql.DatabaseInstanceSettingsBackupConfigurationBackupRetentionSettingsArgs(
                    retained_backups=gcp_settings.sql_retained_backups,
                    retention_unit="COUNT",
                )
            ),
        ),
        maintenance_window=maintenance_window(ctx),
        insights_config=gcp.sql.DatabaseInstanceSettingsInsightsConfigArgs(
            query_insights_enabled=True,
            query_string_length=4096,
            record_application_tags=True,
            record_client_address=True,
        ),
        database_flags=database_flags(ctx),
        **location_preference(primary_zone(ctx)),
    )


def location_preference(zone: str | None) -> dict[str, Any]:
    """The ``location_preference`` setting for ``zone``; nothing for None, so that an instance
    without a preferred zone declares exactly what it always did."""
    if zone is None:
        return {}
    return {
        "location_preference": gcp.sql.DatabaseInstanceSettingsLocationPreferenceArgs(zone=zone)
    }


def admin_user(
    ctx: GcpContext,
    resource_name: str,
    instance: gcp.sql.DatabaseInstance,
    password: pulumi.Output[str],
    *,
    import_: str | None = None,
    ignore_changes: list[str] | None = None,
) -> gcp.sql.User:
    """The built-in admin login (CREATEROLE CREATEDB on Cloud SQL) that provisions services
    (``import_``: an adopted instance's, which exists already)."""
    return gcp.sql.User(
        resource_name,
        instance=instance.name,
        name=ctx.config.postgres.admin_user,
        type="BUILT_IN",
        password=password,
        # The admin owns what it created; dropping it would fail, so Pulumi forgets it instead.
        deletion_policy="ABANDON",
        opts=ctx.opts(import_=import_, ignore_changes=ignore_changes),
    )


def declare_service_databases(
    ctx: GcpContext, sql: SqlInstance, passwords: StackPasswords
) -> dict[str, ServiceDatabase]:
    """Every service's database and roles, created over the Auth Proxy by the admin user.

    Each takes the admin's password and its own service's passwords, nothing else."""
    admin = AdminEndpoint(
        host=ctx.config.gcp.provisioning_host,
        port=ctx.config.gcp.provisioning_port,
        user=ctx.config.postgres.admin_user,
        password=passwords.postgres_admin,
        sslmode=ctx.config.gcp.provisioning_sslmode,
    )
    return {
        spec.name: ServiceDatabase(
            f"{spec.name}-database",
            service=spec,
            admin=admin,
            credentials=passwords.service(spec.name),
            # A service's data outlives a config edit: removing it from the stack must be
            # a deliberate `pulumi state unprotect`, never a side effect.
            opts=ctx.opts(protect=True, depends_on=[sql.instance, sql.admin]),
        )
        for spec in ctx.config.services
    }
