"""postgresql.conf, pg_hba.conf and the admin bootstrap SQL for the dev server."""

from __future__ import annotations

from infra import hashes, naming
from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.render.endpoints import POSTGRES_PORT
from infra.render.environment import render

CONFIG_DIR = "/etc/postgresql"
CONFIG_FILE = f"{CONFIG_DIR}/postgresql.conf"
HBA_FILE = f"{CONFIG_DIR}/pg_hba.conf"
# The server's socket directory: in dev a volume the pooler mounts too (its server connections).
SOCKET_DIR = "/var/run/postgresql"
# A dev read replica's settings: the primary's postgresql.conf, included, plus where it streams
# from (``replica_conf``).
REPLICA_CONFIG_FILE = f"{CONFIG_DIR}/replica.conf"
# The primary's synchronous replication setting (``replication_conf``), included by
# postgresql.conf by a relative name (beside it, wherever it is), delivered live.
REPLICATION_CONFIG_NAME = "replication.conf"
REPLICATION_CONFIG_FILE = f"{CONFIG_DIR}/{REPLICATION_CONFIG_NAME}"
# The login the replicas stream with: REPLICATION and LOGIN only, allowed by pg_hba.conf for
# replication connections from the stack's network and for no database at all.
REPLICATION_USER = "platform_replication"
# Its password, for the replicas' own use: a libpq password file uploaded as a secret (0400, the
# server's uid), never a rendered file, an environment variable or a command line.
REPLICATION_PASSFILE = "/run/secrets/replication.pgpass"
# The stack's first PostgreSQL container (member 0): it created the databases (initdb) and is the
# primary until a failover (``postgres.primary``) makes another member the primary.
BOOTSTRAP_HOST = "postgres"
# The primary's name on the stack's network, whichever member it is: the router's alias
# (infra/router.py), which forwards to the member ``postgres.primary`` names. Replicas seed and
# stream through it, the backup container and the host's port (admin, migrations) reach the
# primary through it, so a failover re-points one file, not every client.
PRIMARY_HOST = "postgres-primary"
# WAL a replication slot may hold back for a replica that is gone: past it the slot is given up
# (the replica re-seeds) instead of the primary's disk filling up.
MAX_SLOT_WAL_KEEP_MB = 2048


def replica_host(index: int) -> str:
    """Member ``index``'s container hostname (its name on the stack's network): ``postgres``
    for member 0, ``postgres-replica-<index>`` for the replicas (1-based)."""
    return BOOTSTRAP_HOST if index == 0 else f"postgres-replica-{index}"


def replica_slot(index: int) -> str:
    """Member ``index``'s replication slot on the primary while it is a standby, and its
    application_name there (``replica_0``: member 0, the ``postgres`` container)."""
    return f"replica_{index}"


def member_index(host: str) -> int:
    """The member number of ``host`` (``postgres``: 0, ``postgres-replica-<n>``: n)."""
    return 0 if host == BOOTSTRAP_HOST else int(host.rsplit("-", 1)[1])


def members(config: StackConfig) -> tuple[int, ...]:
    """Every PostgreSQL member of the dev stack: 0 (``postgres``) and each replica."""
    return tuple(range(config.postgres.replicas + 1))


def primary_index(config: StackConfig) -> int:
    """The member that is the primary: ``postgres.primary``, member 0 when it is empty."""
    return member_index(config.postgres.primary) if config.postgres.primary else 0


def standbys(config: StackConfig) -> tuple[int, ...]:
    """The members that stream from the primary, lowest first."""
    primary = primary_index(config)
    return tuple(index for index in members(config) if index != primary)


def bootstraps(config: StackConfig) -> bool:
    """Whether member 0 is still the stack's bootstrap server (no failover recorded): it alone
    may initdb an empty volume. After a failover every member seeds from the primary."""
    return not config.postgres.primary


def replica_hosts(config: StackConfig) -> tuple[str, ...]:
    """Every dev replica's hostname, replica 1 first; empty without replicas."""
    return tuple(replica_host(i) for i in range(1, config.postgres.replicas + 1))


def standby_hosts(config: StackConfig) -> tuple[str, ...]:
    """The standbys' hostnames (the read replicas READONLY_DATABASE_URL reaches)."""
    return tuple(replica_host(index) for index in standbys(config))


def postgresql_conf(config: StackConfig, hba_file: str = HBA_FILE) -> str:
    """Server settings sized from the stack's services."""
    shared_buffers = config.postgres.shared_buffers_mb
    return render(
        "postgres/postgresql.conf.j2",
        port=POSTGRES_PORT,
        hba_file=hba_file,
        socket_dir=SOCKET_DIR,
        max_connections=config.postgres.max_connections,
        reserved_connections=config.postgres.reserved_connections,
        shared_buffers_mb=shared_buffers,
        effective_cache_size_mb=shared_buffers * 3,
        slow_statement_ms=config.postgres.slow_statement_ms,
        max_slot_wal_keep_mb=MAX_SLOT_WAL_KEEP_MB,
        replication_file=REPLICATION_CONFIG_NAME,
    )


def replication_conf(config: StackConfig) -> str:
    """synchronous_standby_names: any one of the standbys with ``postgres.synchronous``, else
    none (asynchronous). Written into every member: a standby ignores it."""
    names = [replica_slot(index) for index in standbys(config)]
    return render(
        "postgres/replication.conf.j2", standbys=names if config.postgres.synchronous else []
    )


def replica_conf(
    index: int,
    *,
    primary_host: str = PRIMARY_HOST,
    primary_port: int = POSTGRES_PORT,
    primary_config: str = CONFIG_FILE,
    passfile: str = REPLICATION_PASSFILE,
) -> str:
    """Replica ``index``'s settings: the primary's, plus where and as whom it streams. The
    defaults are the dev container's (the tests pass their own addresses and paths)."""
    return render(
        "postgres/replica.conf.j2",
        primary_config=primary_config,
        primary_host=primary_host,
        primary_port=primary_port,
        user=REPLICATION_USER,
        passfile=passfile,
        name=replica_slot(index),
        slot=replica_slot(index),
    )


def replication_passfile(
    password: str, primary_host: str = PRIMARY_HOST, primary_port: int = POSTGRES_PORT
) -> str:
    """The replicas' libpq password file (``REPLICATION_PASSFILE``): replication connections
    to the primary only."""
    password = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"{primary_host}:{primary_port}:replication:{REPLICATION_USER}:{password}\n"


def pg_hba_conf(config: StackConfig) -> str:
    """One line per service: its own logins, its own database, SCRAM only."""
    services = [
        {
            "database": naming.database_name(s.name),
            "logins": [naming.role_name(s.name, kind) for kind in naming.LOGIN_SUFFIXES],
            "tooling": {
                "databases": [naming.database_name(s.name), *naming.scratch_databases(s.name)],
                "login": naming.tool_login(s.name),
            },
        }
        for s in config.services
    ]
    return render(
        "postgres/pg_hba.conf.j2",
        admin_user=config.postgres.admin_user,
        replication_user=REPLICATION_USER,
        services=services,
    )


def _verifier(password: str, purpose: str) -> str:
    """The SCRAM verifier the server stores for ``password`` (its salt derived per purpose)."""
    return hashes.scram_sha256_verifier(password, hashes.deterministic_salt(password, purpose))


def _admin_verifier(credentials: Credentials) -> str:
    return _verifier(credentials.postgres_admin, "postgres-admin")


def _replication_verifier(credentials: Credentials) -> str:
    return _verifier(credentials.postgres_replication, "postgres-replication")


def init_admin_sql(config: StackConfig, credentials: Credentials) -> str:
    """SQL that creates the non-superuser admin and the replication login; verifiers, never
    passwords."""
    return render(
        "postgres/init-admin.sql.j2",
        admin_user=config.postgres.admin_user,
        admin_verifier=_admin_verifier(credentials),
        replication_user=REPLICATION_USER,
        replication_verifier=_replication_verifier(credentials),
    )


def sync_admin_sql(config: StackConfig, credentials: Credentials) -> str:
    """SQL that sets the admin's and the replication login's passwords (verifiers) and
    attributes to the stack's at every start."""
    return render(
        "postgres/sync-admin.sql.j2",
        admin_user=config.postgres.admin_user,
        admin_verifier=_admin_verifier(credentials),
        replication_user=REPLICATION_USER,
        replication_verifier=_replication_verifier(credentials),
    )
