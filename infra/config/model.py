"""The typed stack configuration: everything under the ``persistence:`` namespace.

Loaded once per run (see ``infra.config.load``) into frozen dataclasses. Every default is
documented by its ``doc``; the README's config reference is taken from these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from infra import naming, versions
from infra.config import rules
from infra.config.schema import setting

PROJECT = "persistence"


@dataclass(frozen=True)
class ConnectionLimits:
    """Per-role connection limits; together they size PostgreSQL's max_connections."""

    app: int = setting(
        20,
        rule=rules.between(1, 1000),
        doc="most sessions the service's app login (DATABASE_URL) may hold at once",
    )
    migrator: int = setting(
        3,
        rule=rules.between(1, 100),
        doc="most sessions the migration login (MIGRATION_DATABASE_URL) may hold at once",
    )
    readonly: int = setting(
        5,
        rule=rules.between(1, 1000),
        doc="most sessions the read-only login (READONLY_DATABASE_URL) may hold at once",
    )


@dataclass(frozen=True)
class QueueSpec:
    """A durable queue in the service's vhost, bound to the service's topic exchange."""

    name: str = setting(
        rule=rules.queue_name,
        doc="queue name in the service's vhost, bound to the service's topic exchange, e.g. "
        "'orders.created'",
    )
    type: Literal["quorum", "classic"] = setting(
        "quorum", doc="quorum (replicated, survives a node loss) or classic (single node, lighter)"
    )
    routing_key: str = setting(
        "", doc="binding key on the service's topic exchange; empty: the queue's name"
    )
    message_ttl_ms: int | None = setting(
        None,
        rule=rules.between(1, 30 * 24 * 3600 * 1000),
        doc="milliseconds a message may wait before it expires to the dead-letter queue; unset: "
        "never",
    )
    max_length: int | None = setting(
        None,
        rule=rules.between(1, 100_000_000),
        doc="most messages the queue holds; publishes beyond it are refused; unset: no cap",
    )


@dataclass(frozen=True)
class ServiceSpec:
    """One microservice: it gets a database, four roles, a Redis user and a RabbitMQ vhost."""

    name: str = setting(
        rule=rules.service_name,
        doc="the service's name: its database, role prefix, Redis user and key prefix, RabbitMQ "
        "vhost and user, e.g. 'users'",
    )
    extensions: tuple[str, ...] = setting(
        (),
        rule=rules.extension_names,
        doc="PostgreSQL extensions the admin creates in the service's database, e.g. ['pgcrypto']",
    )
    connection_limits: ConnectionLimits = setting(
        ConnectionLimits(),
        doc="connection limits of the service's three logins (see the table below)",
    )
    statement_timeout_ms: int = setting(
        30_000,
        rule=rules.between(100, 24 * 3600 * 1000),
        doc="milliseconds a statement of the app and read-only logins may run before it is "
        "cancelled",
    )
    idle_in_transaction_session_timeout_ms: int = setting(
        60_000,
        rule=rules.between(100, 24 * 3600 * 1000),
        doc="milliseconds a login's session may sit idle inside an open transaction before it is "
        "ended",
    )
    migrator_statement_timeout_ms: int = setting(
        15 * 60_000,
        rule=rules.between(1000, 24 * 3600 * 1000),
        doc="milliseconds a statement of the migration login may run (migrations run longer than "
        "queries)",
    )
    password_version: int = setting(
        1,
        rule=rules.between(1, 1_000_000),
        doc="increase by one to rotate this service's passwords on the next deploy; the old ones "
        "stop working",
    )
    redis: bool = setting(
        True, doc="give the service a Redis ACL user and REDIS_URL; false: no Redis access at all"
    )
    redis_scripting: bool = setting(
        False,
        doc="let the service's Redis user run Lua scripts (EVAL, EVALSHA, their _RO forms, "
        "FCALL, SCRIPT LOAD/EXISTS), still confined to its keys; a script that writes and then "
        "loops freezes Redis for every service until SHUTDOWN NOSAVE (see the README)",
    )
    queues: tuple[QueueSpec, ...] = setting(
        (), doc="durable queues in the service's vhost (see the table below)"
    )

    def __post_init__(self) -> None:
        if self.redis_scripting and not self.redis:
            raise ValueError(
                "redis_scripting needs a Redis user; remove it or set redis: true "
                "(e.g. {name: users, redis: true, redis_scripting: true})"
            )


# The admin login of each server when the stack names none.
DEFAULT_ADMIN = "platform_admin"
# A stack's way from Memorystore for Redis to Valkey, in order (README, prod).
REDIS_MIGRATION_STAGES = ("none", "beside", "switched", "retiring")
# Memorystore for Valkey's node types with their memory, smallest first.
VALKEY_NODE_TYPES = ("SHARED_CORE_NANO", "STANDARD_SMALL", "HIGHMEM_MEDIUM", "HIGHMEM_XLARGE")


@dataclass(frozen=True)
class PoolerSettings:
    """The connection pooler in front of every service's database (PgBouncer in dev, Cloud SQL
    Managed Connection Pooling in prod). A service's server pools are its connection limits."""

    enabled: bool = setting(
        True,
        doc="route DATABASE_URL and READONLY_DATABASE_URL through the pooler; false: straight to "
        "PostgreSQL (MIGRATION_DATABASE_URL is always direct)",
    )
    pool_mode: Literal["transaction", "session"] = setting(
        "transaction",
        doc="transaction: a server connection is a client's for one transaction (session state, "
        "LISTEN and session advisory locks do not carry over); session: for the client's session",
    )
    max_client_connections: int = setting(
        2000,
        rule=rules.between(10, 100_000),
        doc="most client connections the pooler accepts, all services together; clients beyond "
        "a service's server pool wait for a connection instead of being refused",
    )
    max_prepared_statements: int = setting(
        200,
        rule=rules.between(0, 10_000),
        doc="prepared statements the pooler tracks per server connection, so that drivers' "
        "protocol-level prepared statements work in transaction mode; 0: off",
    )


@dataclass(frozen=True)
class PostgresSettings:
    """Server-wide PostgreSQL settings."""

    admin_user: str = setting(
        DEFAULT_ADMIN,
        rule=rules.admin_name(DEFAULT_ADMIN),
        doc="non-superuser admin login (CREATEROLE CREATEDB) that provisions services, runs "
        "backups and restores",
    )
    slow_statement_ms: int = setting(
        1000,
        rule=rules.between(10, 3_600_000),
        doc="statements slower than this many milliseconds are written to the server log "
        "(log_min_duration_statement)",
    )
    shared_buffers_mb: int = setting(
        256,
        rule=rules.between(16, 262_144),
        doc="PostgreSQL's shared_buffers in MiB (dev server); effective_cache_size is set to "
        "three times it",
    )
    reserved_connections: int = setting(
        20,
        rule=rules.between(5, 1000),
        doc="connections kept free on top of the services' limits for the admin, backups and "
        "monitoring",
    )
    max_connections: int = setting(
        300,
        rule=rules.between(25, 10_000),
        doc="the server's max_connections; fixed, so that changing one service's limits never "
        "restarts the server; must cover every service's limits plus reserved_connections",
    )
    pooler: PoolerSettings = setting(
        PoolerSettings(),
        doc="the connection pooler in front of the databases (see the table below)",
    )
    replicas: int = setting(
        0,
        rule=rules.between(0, 5),
        doc="streaming read replicas of the server, which serve READONLY_DATABASE_URL (dev: "
        "containers seeded with pg_basebackup; prod: Cloud SQL read replicas in other zones); "
        "0: none, the read-only login reads from the primary",
    )
    synchronous: bool = setting(
        False,
        doc="dev: a commit is acknowledged only once a replica has it on disk (synchronous "
        "replication to any one of the replicas): no acknowledged write is lost with the "
        "primary, at the cost of a round trip per commit, and writes wait while no replica "
        "answers; needs replicas",
    )
    primary: str = setting(
        "",
        rule=rules.postgres_member_or_empty,
        doc="dev: which PostgreSQL container is the primary; written by `make failover` (`db "
        "promote`), which promotes a replica; empty: `postgres`, which created the stack's "
        "databases. Set by hand only to undo a failover's record",
    )
    max_replica_lag_seconds: int = setting(
        30,
        rule=rules.between(1, 86_400),
        doc="replay lag, in seconds, past which `db lag` exits non-zero and prod alerts",
    )


@dataclass(frozen=True)
class RedisSettings:
    """Server-wide Redis settings."""

    admin_user: str = setting(
        DEFAULT_ADMIN,
        rule=rules.admin_name(DEFAULT_ADMIN),
        doc="Redis ACL user for operations and backups (the only one with admin commands)",
    )
    maxmemory_mb: int = setting(
        256,
        rule=rules.between(16, 1_048_576),
        doc="Redis maxmemory in MiB (dev server): what happens at the limit is maxmemory_policy",
    )
    maxmemory_policy: str = setting(
        "noeviction",
        rule=rules.one_of(
            "noeviction",
            "allkeys-lru",
            "allkeys-lfu",
            "volatile-lru",
            "volatile-lfu",
            "volatile-ttl",
            "volatile-random",
            "allkeys-random",
        ),
        doc="what Redis does at maxmemory: noeviction refuses writes; the others evict keys",
    )


@dataclass(frozen=True)
class RabbitmqSettings:
    """Server-wide RabbitMQ settings."""

    admin_user: str = setting(
        DEFAULT_ADMIN,
        rule=rules.admin_name(DEFAULT_ADMIN),
        doc="RabbitMQ administrator user for operations, backups and broker prune (the only "
        "administrator)",
    )
    disk_free_limit_mb: int = setting(
        1024,
        rule=rules.between(50, 1_048_576),
        doc="publishers are blocked when the broker's free disk falls below this many MiB",
    )
    memory_high_watermark: float = setting(
        0.6,
        rule=rules.between(0.1, 0.9),
        doc="publishers are blocked when the broker uses this fraction of the machine's memory",
    )
    nodes: int | None = setting(
        None,
        rule=rules.quorum_nodes,
        doc="RabbitMQ nodes: 1 (a single node) or 3 or 5 (a cluster whose quorum queues and "
        "pause_minority survive losing a minority of nodes); unset: the platform's default, 3 "
        "in prod (one VM per zone, behind an internal load balancer) and 1 in dev; a prod stack "
        "deployed before the cluster sets 1 to keep its single VM; in dev, 3 or 5 run one "
        "container per node, node N publishing AMQP on docker.ports.amqp + N - 1 and the "
        "management API on docker.ports.management + N - 1",
    )


# How many RabbitMQ nodes each platform can build today. The cluster's parts (rendered
# cluster_formation config, the fault-tested harness, ``infra.broker.cluster``) exist; a
# platform's entry grows when it can place that many nodes, and its default with it.
RABBITMQ_NODES_BUILT: dict[str, tuple[int, ...]] = {
    "docker": (1, 3, 5),
    "gcp": (1, 3, 5),
    "bootstrap": (1,),
}
RABBITMQ_DEFAULT_NODES: dict[str, int] = {"docker": 1, "gcp": 3, "bootstrap": 1}


def _generation(default: int, periods: str) -> Any:
    """One generation of ``KeepGenerations``: they differ only in default and period."""
    return setting(
        default,
        rule=rules.between(0, 1000),
        doc=f"per service, the newest backup of each of the last N {periods} that have one",
    )


@dataclass(frozen=True)
class KeepGenerations:
    """How many backups of each generation ``prune`` keeps per service."""

    hourly: int = _generation(24, "hours")
    daily: int = _generation(7, "days")
    weekly: int = _generation(4, "ISO weeks")
    monthly: int = _generation(6, "months")


@dataclass(frozen=True)
class BackupSettings:
    """Backup schedule, retention and bucket lifecycle."""

    schedule: str = setting(
        "0 3 * * *",
        rule=rules.cron_schedule,
        doc="when backups run (backup, verify, prune), as cron in UTC",
    )
    format: Literal["custom", "directory"] = setting(
        "custom",
        doc="pg_dump output format: custom (one file) or directory (a tar of pg_dump's directory "
        "format)",
    )
    keep: KeepGenerations = setting(
        KeepGenerations(),
        doc="how many backups of each generation prune keeps (see the table below)",
    )
    retention_days: int = setting(
        7,
        rule=rules.between(1, 3650),
        doc="days a backup object cannot be deleted or replaced (bucket retention policy)",
    )
    soft_delete_days: int = setting(
        7,
        rule=rules.between(7, 90),
        doc="days a deleted backup object can still be recovered (GCS soft delete)",
    )
    coldline_after_days: int = setting(
        30,
        rule=rules.between(1, 3650),
        doc="days after which backup objects move to the cheaper Coldline storage class",
    )
    delete_after_days: int = setting(
        400,
        rule=rules.between(2, 36500),
        doc="days after which the bucket lifecycle deletes backup objects, whatever prune kept; "
        "more than coldline_after_days and at least retention_days",
    )

    def __post_init__(self) -> None:
        if self.delete_after_days <= self.coldline_after_days:
            raise ValueError(
                "delete_after_days must be greater than coldline_after_days (e.g. 30 and 400)"
            )
        if self.delete_after_days < self.retention_days:
            raise ValueError("delete_after_days must be at least retention_days (e.g. 400 and 7)")


@dataclass(frozen=True)
class DockerPorts:
    """Host ports the dev containers publish (on ``bind_address`` only)."""

    postgres: int = setting(15432, rule=rules.port, doc="host port of the dev PostgreSQL server")
    redis: int = setting(16379, rule=rules.port, doc="host port of the dev Redis server")
    amqp: int = setting(
        15672, rule=rules.port, doc="host port of the dev RabbitMQ's AMQP listener (AMQP_URL)"
    )
    management: int = setting(
        16672,
        rule=rules.port,
        doc="host port of the dev RabbitMQ's management API (broker prune, backups)",
    )
    pooler: int = setting(
        16432,
        rule=rules.port,
        doc="host port of the dev PgBouncer (DATABASE_URL and READONLY_DATABASE_URL)",
    )


@dataclass(frozen=True)
class DockerImages:
    """Server images, pinned to explicit versions."""

    postgres: str = setting(
        "postgres:15.10-bookworm",
        doc="PostgreSQL server image, pinned to a release (major version 15)",
    )
    redis: str = setting(
        "valkey/valkey:8.0.1-bookworm",
        doc="Redis-protocol server image, pinned to a release: Valkey 8.0, the engine prod runs "
        "and the tests run (Debian bookworm-backports' 8.0); it must run valkey-server",
    )
    rabbitmq: str = setting(
        f"rabbitmq:{versions.RABBITMQ_VERSION}-management",
        doc="RabbitMQ server image with the management plugin, pinned to a release",
    )
    backup: str = setting(
        "postgres:15.10-bookworm",
        doc="image the backup container runs pg_dump and the backup loop in (PostgreSQL 15 client "
        "tools)",
    )
    pooler: str = setting(
        "persistence/pgbouncer:1.24-trixie",
        doc="PgBouncer image (1.21 or later: prepared statements in transaction mode); the "
        "default is built on this machine from Debian trixie's package, never pulled",
    )


@dataclass(frozen=True)
class DockerMemory:
    """Container memory limits, in MiB."""

    postgres: int = setting(
        1024,
        rule=rules.between(128, 1_048_576),
        doc="memory limit of the PostgreSQL container, in MiB",
    )
    redis: int = setting(
        512,
        rule=rules.between(64, 1_048_576),
        doc="memory limit of the Redis container, in MiB (keep above redis.maxmemory_mb)",
    )
    rabbitmq: int = setting(
        1024,
        rule=rules.between(256, 1_048_576),
        doc="memory limit of the RabbitMQ container, in MiB",
    )
    backup: int = setting(
        512, rule=rules.between(64, 1_048_576), doc="memory limit of the backup container, in MiB"
    )
    pooler: int = setting(
        128,
        rule=rules.between(32, 1_048_576),
        doc="memory limit of the PgBouncer container, in MiB",
    )
    router: int = setting(
        128,
        rule=rules.between(32, 1_048_576),
        doc="memory limit of the router that forwards the host's PostgreSQL port and "
        "`postgres-primary` to the primary, in MiB",
    )


@dataclass(frozen=True)
class DockerSettings:
    """The dev stack on a local Docker engine."""

    bind_address: str = setting(
        "127.0.0.1",
        rule=rules.loopback_address,
        doc="host address every dev port is published on (loopback only)",
    )
    ports: DockerPorts = setting(
        DockerPorts(), doc="host ports of the dev servers, one each (see the table below)"
    )
    images: DockerImages = setting(DockerImages(), doc="server images (see the table below)")
    memory_mb: DockerMemory = setting(
        DockerMemory(), doc="container memory limits (see the table below)"
    )
    backup_dir: str = setting(
        "",
        rule=rules.absolute_path_or_empty,
        doc="host folder used as the local backup bucket (empty: .backups/<stack> in the "
        "checkout); owned by whoever runs pulumi, mode 0700",
    )

    def __post_init__(self) -> None:
        ports = [
            self.ports.postgres,
            self.ports.redis,
            self.ports.amqp,
            self.ports.management,
            self.ports.pooler,
        ]
        if len(set(ports)) != len(ports):
            raise ValueError("ports: every server needs its own host port (e.g. 15432 and 16379)")


@dataclass(frozen=True)
class GcpSettings:
    """The prod stack on Google Cloud. Project and region come from gcp:project / gcp:region."""

    backup_region: str = setting(
        "europe-west4",
        rule=rules.gcp_region,
        doc="region of the backup buckets; another region than gcp:region, so a regional outage "
        "keeps the backups",
    )
    subnet_cidr: str = setting(
        "10.20.0.0/24",
        rule=rules.ipv4_cidr,
        doc="address range of the stack's subnet (the RabbitMQ VM and the backup job)",
    )
    private_services_prefix_length: int = setting(
        20,
        rule=rules.between(16, 24),
        doc="size of the range reserved for private services access (Cloud SQL, Memorystore), as "
        "a prefix length",
    )
    sql_edition: Literal["ENTERPRISE_PLUS", "ENTERPRISE"] = setting(
        "ENTERPRISE_PLUS",
        doc="Cloud SQL edition of the main instance: ENTERPRISE_PLUS (needed by the pooled "
        "endpoint, postgres.pooler) or ENTERPRISE (cheaper per vCPU and GB; only with "
        "postgres.pooler.enabled: false)",
    )
    sql_tier: str = setting(
        "db-perf-optimized-N-2",
        rule=rules.sql_tier,
        doc="Cloud SQL machine tier of the main instance, fitting sql_edition: "
        "'db-perf-optimized-N-<vCPUs>' for ENTERPRISE_PLUS (e.g. 'db-perf-optimized-N-2': 2 "
        "vCPU, 16 GB), 'db-custom-<vCPUs>-<MiB>' for ENTERPRISE (e.g. 'db-custom-2-7680')",
    )
    sql_disk_size_gb: int = setting(
        50,
        rule=rules.between(10, 65_536),
        doc="initial Cloud SQL disk size in GB; it grows automatically",
    )
    sql_backup_location: str = setting(
        "europe-west4",
        rule=rules.gcp_region,
        doc="region where Cloud SQL keeps its automated backups",
    )
    sql_retained_backups: int = setting(
        14, rule=rules.between(1, 365), doc="how many automated Cloud SQL backups are kept"
    )
    sql_log_retention_days: int = setting(
        7, rule=rules.between(1, 7), doc="days of transaction log kept for point-in-time recovery"
    )
    valkey_node_type: str = setting(
        "STANDARD_SMALL",
        rule=rules.one_of(*VALKEY_NODE_TYPES),
        doc="Memorystore for Valkey node type, which fixes its memory: SHARED_CORE_NANO 1.4 GB, "
        "STANDARD_SMALL 6.5 GB, HIGHMEM_MEDIUM 13 GB, HIGHMEM_XLARGE 58 GB",
    )
    redis_migration: str = setting(
        "none",
        rule=rules.one_of(*REDIS_MIGRATION_STAGES),
        doc="where a stack that ran Memorystore for Redis is on its way to Valkey (README, "
        "'Moving prod from Memorystore for Redis to Valkey'): none (Valkey only), beside (the "
        "old instance serves, Valkey is created beside it), switched (Valkey serves, the old "
        "instance is kept), retiring (the old instance loses its protection; none then deletes "
        "it)",
    )
    valkey_import_uris: tuple[str, ...] = setting(
        (),
        rule=rules.gcs_object_uris,
        doc="RDB files (gs:// URIs, e.g. the old instance's export) Valkey loads when it is "
        "created; ignored afterwards",
    )
    redis_memory_size_gb: int = setting(
        5,
        rule=rules.between(1, 300),
        doc="capacity in GB of the old Memorystore for Redis instance, kept as it was while "
        "redis_migration is beside, switched or retiring",
    )
    redis_snapshot_period: str = setting(
        "ONE_HOUR",
        rule=rules.one_of("ONE_HOUR", "SIX_HOURS", "TWELVE_HOURS", "TWENTY_FOUR_HOURS"),
        doc="how often the old Memorystore for Redis instance writes an RDB snapshot (while it "
        "is kept)",
    )
    dr_replica_region: str = setting(
        "",
        rule=rules.gcp_region_or_empty,
        doc="a region other than gcp:region for one more Cloud SQL read replica, the one the "
        "disaster-recovery runbook promotes; empty: none",
    )
    sql_adopt_instance: str = setting(
        "",
        rule=rules.adoptable_sql_instance_or_empty,
        doc="the promoted disaster-recovery replica this stack takes as its Cloud SQL instance "
        "(README, 'Disaster-recovery runbook (prod)'): another stack's `<project>-<stack>-pg-dr`, "
        "imported, never created; empty: the stack's own instance",
    )
    sql_adopt_importing: bool = setting(
        False,
        doc="true only for the one `pulumi up` that imports sql_adopt_instance: its settings (a "
        "promoted replica's: zonal, no backups) are taken as they are; false afterwards, so the "
        "next `pulumi up` converges them in place (regional HA, backups, PITR, pooling)",
    )
    valkey_replicas: int = setting(
        1,
        rule=rules.between(0, 5),
        doc="Memorystore for Valkey replicas, each in another zone; the primary fails over to "
        "one (0: no replica, no failover)",
    )
    rabbitmq_machine_type: str = setting(
        "e2-standard-2",
        doc="Compute Engine machine type of each RabbitMQ VM (one per node), e.g. 'e2-standard-2'",
    )
    rabbitmq_disk_size_gb: int = setting(
        50,
        rule=rules.between(10, 65_536),
        doc="size of each RabbitMQ VM's data disk in GB (kept when the VM is replaced)",
    )
    maintenance_day: int = setting(
        7,
        rule=rules.between(1, 7),
        doc="day of Cloud SQL's maintenance window: 1 = Monday ... 7 = Sunday",
    )
    maintenance_hour: int = setting(
        3, rule=rules.between(0, 23), doc="hour (UTC) Cloud SQL's maintenance window starts"
    )
    dns_zone: str = setting(
        "persistence.internal.",
        doc="private DNS zone the servers' names live in, ending with a dot",
    )
    zone_suffix: str = setting(
        "b",
        rule=rules.one_of("a", "b", "c", "d", "f"),
        doc="zone of the RabbitMQ VM and its data disk (a cluster's node 1; the other nodes go "
        "to two other zones of the region): <gcp:region>-<suffix>",
    )
    provisioning_host: str = setting(
        "127.0.0.1",
        rule=rules.ipv4_address,
        doc="where the deploying runner reaches Cloud SQL (the Cloud SQL Auth Proxy it runs)",
    )
    provisioning_port: int = setting(
        6432, rule=rules.port, doc="the Cloud SQL Auth Proxy's port on the deploying runner"
    )
    rabbitmq_management_port: int = setting(
        15673,
        rule=rules.port,
        doc="loopback port where the deploying runner reaches the RabbitMQ VM's management API "
        "(an IAP tunnel: make broker-tunnel-start); services' vhosts and users are applied "
        "through it to the running broker",
    )
    backup_base_image: str = setting(
        "postgres:15.10-bookworm",
        doc="public PostgreSQL image the prod backup job's image is built from (pg_dump 15)",
    )
    backup_job_timeout_minutes: int = setting(
        180,
        rule=rules.between(10, 1440),
        doc="minutes one backup run (backup, verify, prune) may take before Cloud Run stops it",
    )
    verify_instance_tier: str = setting(
        "",
        rule=rules.sql_tier_or_empty,
        doc="empty: verification restores into scratch databases on the main instance, at the "
        "scheduled hour; a tier (e.g. 'db-g1-small'): a separate small verification instance",
    )
    provisioning_sslmode: str = setting(
        "disable",
        rule=rules.one_of("disable", "require", "verify-ca", "verify-full"),
        doc="libpq sslmode to provisioning_host; 'disable' only for the Auth Proxy on loopback "
        "(its local listener is plaintext, the proxy itself encrypts to Cloud SQL)",
    )

    def __post_init__(self) -> None:
        if self.sql_adopt_importing and not self.sql_adopt_instance:
            raise ValueError(
                "gcp.sql_adopt_importing is only for the `pulumi up` that imports "
                "gcp.sql_adopt_instance; set both (e.g. gcp: {sql_adopt_instance: "
                "persistence-prod-pg-dr, sql_adopt_importing: true}) or neither"
            )
        if not rules.sql_tier_fits(self.sql_edition, self.sql_tier):
            raise ValueError(
                f"gcp.sql_tier {self.sql_tier!r} does not fit gcp.sql_edition "
                f"{self.sql_edition}: {rules.SQL_EDITION_TIERS[self.sql_edition]}"
            )
        if self.provisioning_sslmode == "disable" and not self.provisioning_host.startswith("127."):
            raise ValueError(
                f"gcp.provisioning_sslmode 'disable' is only allowed for the Cloud SQL Auth Proxy "
                f"on loopback, not {self.provisioning_host!r}; use 'require' (e.g. for a runner "
                "inside the VPC reaching the instance's private IP)"
            )


@dataclass(frozen=True)
class BootstrapSettings:
    """The bootstrap stack: keyless CI access to Google Cloud and the other stacks' state.

    Applied by a project owner by hand (it grants the deployer its roles, so the deployer must
    not be able to change it); every other stack's workflows authenticate through it.
    """

    github_repository: str = setting(
        "",
        rule=rules.github_repository,
        doc="owner/name of the only repository whose workflows may authenticate (e.g. "
        "'example-org/persistence'); required for platform 'bootstrap'",
    )
    deploy_branch: str = setting(
        "main", rule=rules.git_branch, doc="the only branch whose workflows may deploy"
    )
    deploy_environment: str = setting(
        "prod",
        rule=rules.github_environment,
        doc="the GitHub environment (with required reviewers) whose jobs may deploy",
    )
    state_region: str = setting(
        "europe-west1",
        rule=rules.gcp_region,
        doc="region of the state bucket and of its KMS keys (CMEK needs both in one place)",
    )
    key_rotation_days: int = setting(
        90, rule=rules.between(1, 365), doc="days between automatic rotations of both KMS keys"
    )
    state_versions_kept: int = setting(
        50, rule=rules.between(1, 1000), doc="older versions of each state object kept"
    )


@dataclass(frozen=True)
class AlertSettings:
    """Cloud Monitoring alerts of the prod stack: who is told, and when."""

    emails: tuple[str, ...] = setting(
        (),
        rule=rules.email_addresses,
        doc="addresses every alert policy notifies (the gcp platform needs at least one)",
    )
    sql_cpu_percent: int = setting(
        85,
        rule=rules.between(10, 100),
        doc="alert when Cloud SQL CPU stays above this percentage for 15 minutes",
    )
    sql_disk_percent: int = setting(
        80,
        rule=rules.between(10, 100),
        doc="alert when Cloud SQL disk use is above this percentage",
    )
    sql_connections_percent: int = setting(
        90,
        rule=rules.between(10, 100),
        doc="alert when Cloud SQL connections exceed this percentage of postgres.max_connections",
    )
    sql_pooler_waiting_clients: int = setting(
        0,
        rule=rules.between(0, 100_000),
        doc="alert when more clients than this, all databases together, wait for a server "
        "connection at the pooled endpoint for 5 minutes (0: any client waiting that long); "
        "only with postgres.pooler.enabled",
    )
    redis_memory_percent: int = setting(
        85,
        rule=rules.between(10, 100),
        doc="alert when Memorystore memory use is above this percentage",
    )


@dataclass(frozen=True)
class StackConfig:
    """Everything a stack file says about the platform."""

    platform: Literal["docker", "gcp", "bootstrap"] = setting(
        doc="where the stack runs: docker (dev), gcp (prod) or bootstrap (CI identity and state "
        "backend)"
    )
    services: tuple[ServiceSpec, ...] = setting(
        (),
        doc="the microservices: required (at least one) for docker and gcp, refused for bootstrap; "
        "adding one gives it a database, roles, a Redis user and a RabbitMQ vhost",
    )
    postgres: PostgresSettings = setting(PostgresSettings(), doc="server-wide PostgreSQL settings")
    redis: RedisSettings = setting(RedisSettings(), doc="server-wide Redis settings")
    rabbitmq: RabbitmqSettings = setting(RabbitmqSettings(), doc="server-wide RabbitMQ settings")
    backup: BackupSettings = setting(
        BackupSettings(), doc="backup schedule, retention and bucket lifecycle"
    )
    docker: DockerSettings = setting(
        DockerSettings(), doc="the dev stack on a local Docker engine (platform docker)"
    )
    gcp: GcpSettings = setting(GcpSettings(), doc="the prod stack on Google Cloud (platform gcp)")
    bootstrap: BootstrapSettings = setting(
        BootstrapSettings(),
        doc="CI identity and state backend; read by platform bootstrap only, refused by the others",
    )
    alerts: AlertSettings = setting(
        AlertSettings(), doc="Cloud Monitoring alerts of the prod stack"
    )

    def service(self, name: str) -> ServiceSpec:
        """The service called ``name``; KeyError if the stack has none."""
        for spec in self.services:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def rabbitmq_nodes(self) -> int:
        """How many RabbitMQ nodes this stack runs: ``rabbitmq.nodes``, or the platform's
        default when unset. Everything that sizes the broker reads this, never the raw key."""
        if self.rabbitmq.nodes is not None:
            return self.rabbitmq.nodes
        return RABBITMQ_DEFAULT_NODES[self.platform]

    def _check_docker_cluster_ports(self) -> None:
        ports = self.docker.ports
        taken = [ports.postgres, ports.redis, ports.pooler]
        taken += [port for pair in self.docker_rabbitmq_ports() for port in pair]
        if len(set(taken)) != len(taken) or max(taken) > 65535:
            last = self.rabbitmq_nodes - 1
            raise ValueError(
                f"docker.ports: a {self.rabbitmq_nodes}-node RabbitMQ cluster publishes AMQP on "
                f"{ports.amqp}-{ports.amqp + last} and the management API on "
                f"{ports.management}-{ports.management + last} (node N on the port plus N - 1); "
                "these ranges must not overlap each other or the postgres, redis and pooler ports "
                "(e.g. docker: {ports: {amqp: 15672, management: 16672}})"
            )

    def _check_pooler_edition(self) -> None:
        """Prod's pooled endpoint is Cloud SQL Managed Connection Pooling, an Enterprise Plus
        feature: an Enterprise instance with the pooler on cannot be built."""
        if self.postgres.pooler.enabled and self.gcp.sql_edition != "ENTERPRISE_PLUS":
            raise ValueError(
                f"postgres.pooler.enabled needs gcp.sql_edition ENTERPRISE_PLUS, not "
                f"{self.gcp.sql_edition} (Cloud SQL Managed Connection Pooling is an Enterprise "
                "Plus feature); set gcp: {sql_edition: ENTERPRISE_PLUS, sql_tier: "
                "db-perf-optimized-N-2}, or postgres: {pooler: {enabled: false}} to keep "
                "ENTERPRISE without the pooled endpoint"
            )

    @property
    def connections_needed(self) -> int:
        """Every service's connection limits plus the reserve for admin work."""
        per_service = sum(
            int(getattr(s.connection_limits, kind))
            for s in self.services
            for kind in naming.LOGIN_SUFFIXES
        )
        return per_service + self.postgres.reserved_connections

    def docker_rabbitmq_ports(self) -> list[tuple[int, int]]:
        """Each dev RabbitMQ node's host ports (AMQP, management), node 1 first: node N
        publishes on ``docker.ports.amqp`` and ``docker.ports.management`` plus N - 1."""
        ports = self.docker.ports
        return [(ports.amqp + i, ports.management + i) for i in range(self.rabbitmq_nodes)]

    def _check_primary(self) -> None:
        primary = self.postgres.primary
        if not primary:
            return
        if self.platform != "docker":
            raise ValueError(
                f"postgres.primary: {primary} is the dev stack's failover record; prod's Cloud SQL "
                "fails over by itself (leave it empty)"
            )
        members = ["postgres"] + [
            f"postgres-replica-{i}" for i in range(1, self.postgres.replicas + 1)
        ]
        if primary not in members:
            raise ValueError(
                f"postgres.primary: {primary} is not one of the stack's PostgreSQL containers "
                f"({', '.join(members)}, with postgres.replicas: {self.postgres.replicas})"
            )

    def __post_init__(self) -> None:
        if self.platform == "docker" and self.rabbitmq_nodes > 1:
            self._check_docker_cluster_ports()
        if self.platform == "gcp":
            self._check_pooler_edition()
        if self.postgres.synchronous and (self.platform != "docker" or not self.postgres.replicas):
            raise ValueError(
                "postgres.synchronous: true needs the dev stack's replicas (postgres.replicas: 1 "
                "or more, platform: docker); prod's Cloud SQL already commits synchronously to "
                "its HA standby, and its read replicas are asynchronous"
            )
        self._check_primary()
        pooled = self.postgres.pooler.enabled
        if self.platform == "docker" and self.postgres.replicas and not pooled:
            raise ValueError(
                f"postgres.replicas: {self.postgres.replicas} needs the pooler, which spreads "
                "READONLY_DATABASE_URL over the replicas; set postgres.pooler.enabled: true, or "
                "replicas: 0"
            )
        needed = self.connections_needed
        if needed > self.postgres.max_connections:
            raise ValueError(
                f"postgres.max_connections: {self.postgres.max_connections} is less than the "
                f"services' connection limits plus postgres.reserved_connections ({needed}); "
                f"set it to at least {needed} (e.g. postgres: {{max_connections: {needed}}})"
            )
