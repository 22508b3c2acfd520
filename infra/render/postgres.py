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
    )


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
        "postgres/pg_hba.conf.j2", admin_user=config.postgres.admin_user, services=services
    )


def _admin_verifier(credentials: Credentials) -> str:
    password = credentials.postgres_admin
    return hashes.scram_sha256_verifier(
        password, hashes.deterministic_salt(password, "postgres-admin")
    )


def init_admin_sql(config: StackConfig, credentials: Credentials) -> str:
    """SQL that creates the non-superuser admin; contains a verifier, never the password."""
    return render(
        "postgres/init-admin.sql.j2",
        admin_user=config.postgres.admin_user,
        admin_verifier=_admin_verifier(credentials),
    )


def sync_admin_sql(config: StackConfig, credentials: Credentials) -> str:
    """SQL that sets the admin's password to the stack's at every start (a verifier too)."""
    return render(
        "postgres/sync-admin.sql.j2",
        admin_user=config.postgres.admin_user,
        admin_verifier=_admin_verifier(credentials),
    )
