"""pgbouncer.ini and its auth file: one pool per service login, SCRAM verifiers only.

The dev stack runs PgBouncer in front of PostgreSQL (prod uses Cloud SQL's managed pooling).
Each service's app and read-only logins get a pool to their own database, sized by the login's
connection limit; the auth file holds the same SCRAM verifiers PostgreSQL stores
(``hashes.postgres_login_verifier``), so no file holds a password and a service authenticates
as itself, end to end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from infra import hashes, naming
from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.render import postgres as postgres_files
from infra.render.endpoints import POOLED_LOGINS, POOLER_PORT, POSTGRES_PORT, Endpoints
from infra.render.environment import render
from infra.render.services import postgres_url

CONFIG_DIR = "/etc/pgbouncer"
CONFIG_FILE = f"{CONFIG_DIR}/pgbouncer.ini"
AUTH_FILE = f"{CONFIG_DIR}/userlist.txt"
# The pooler's console login (SHOW POOLS, RELOAD): it exists in the auth file only, never as a
# PostgreSQL role, and no service login can use the console.
CONSOLE_USER = "pooler_admin"
CONSOLE_DATABASE = "pgbouncer"
# Where the dev container mounts PostgreSQL's socket directory: PgBouncer's server connections
# go through the socket (cheaper than TCP per query), as each service's own login.
SERVER_SOCKET_DIR = "/run/postgresql-server"
# The logins whose URLs go through the pooler (the migrator's stays direct), in a stable order.
LOGINS = tuple(kind for kind in naming.LOGIN_SUFFIXES if kind in POOLED_LOGINS)


@dataclass(frozen=True)
class PooledLogin:
    kind: str  # app or readonly
    name: str
    limit: int  # the role's CONNECTION LIMIT: the most server connections its pool may hold


@dataclass(frozen=True)
class PooledDatabase:
    service: str
    database: str
    logins: tuple[PooledLogin, ...]

    @property
    def pool_size(self) -> int:
        """Per (database, login) pair; each login's own limit caps it further."""
        return max(login.limit for login in self.logins)

    @property
    def replicas_alias(self) -> str:
        """Its name on the read replicas (READONLY_DATABASE_URL, with replicas)."""
        return naming.replicas_alias(self.service)

    @property
    def readonly_limit(self) -> int:
        """The read-only login's limit: its pool on the replicas, spread over all of them."""
        return next(login.limit for login in self.logins if login.kind == "readonly")


def pooled_databases(config: StackConfig) -> list[PooledDatabase]:
    """Each service's database and its pooled logins, with their server connection budgets."""
    return [
        PooledDatabase(
            spec.name,
            naming.database_name(spec.name),
            tuple(
                PooledLogin(
                    kind,
                    naming.role_name(spec.name, kind),
                    int(getattr(spec.connection_limits, kind)),
                )
                for kind in LOGINS
            ),
        )
        for spec in config.services
    ]


def primary_server_host(config: StackConfig) -> str:
    """Where the pooler reaches the primary: member 0 through its socket directory (the fastest
    road; the volume is mounted at SERVER_SOCKET_DIR), a promoted replica over the network."""
    primary = postgres_files.primary_index(config)
    return SERVER_SOCKET_DIR if primary == 0 else postgres_files.replica_host(primary)


def pgbouncer_ini(
    config: StackConfig,
    *,
    server_port: int = POSTGRES_PORT,
    listen_address: str = "0.0.0.0",  # noqa: S104 - inside the container; published on loopback
    listen_port: int = POOLER_PORT,
    auth_file: str = AUTH_FILE,
    replica_hosts: tuple[str, ...] | None = None,
    replica_port: int = POSTGRES_PORT,
    server_host: str | None = None,
) -> str:
    """The pooler's configuration; the defaults are the dev container's (the tests pass their
    own server port and listen address, and replicas' addresses). The server is reached
    through its socket directory, mounted at SERVER_SOCKET_DIR; the read replicas over the
    stack's network, one port for all (PgBouncer takes one per database entry)."""
    pooler = config.postgres.pooler
    hosts = postgres_files.standby_hosts(config) if replica_hosts is None else replica_hosts
    return render(
        "pgbouncer/pgbouncer.ini.j2",
        services=pooled_databases(config),
        replica_hosts=",".join(hosts),
        replica_port=replica_port,
        server_host=primary_server_host(config) if server_host is None else server_host,
        server_port=server_port,
        listen_address=listen_address,
        listen_port=listen_port,
        auth_file=auth_file,
        console_user=CONSOLE_USER,
        pool_mode=pooler.pool_mode,
        max_client_connections=pooler.max_client_connections,
        max_prepared_statements=pooler.max_prepared_statements,
    )


def console_verifier(credentials: Credentials) -> str:
    password = credentials.pooler_admin
    return hashes.scram_sha256_verifier(
        password, hashes.deterministic_salt(password, "pooler-console")
    )


def userlist_txt(config: StackConfig, credentials: Credentials) -> str:
    """The auth file: the console login, then every pooled login with its server's verifier."""
    users = [{"name": CONSOLE_USER, "verifier": console_verifier(credentials)}]
    for spec in config.services:
        logins = credentials.for_service(spec.name)
        users += [
            {
                "name": naming.role_name(spec.name, kind),
                "verifier": hashes.postgres_login_verifier(logins.postgres_password(kind)),
            }
            for kind in LOGINS
        ]
    return render("pgbouncer/userlist.txt.j2", users=users)


def console_url(endpoints: Endpoints, password: str) -> str:
    """The console login's URL (``db pools``), or "" where the stack runs no pooler."""
    if endpoints.pooler_host is None or endpoints.pooler_port is None:
        return ""
    pooler = replace(
        endpoints, postgres_host=endpoints.pooler_host, postgres_port=endpoints.pooler_port
    )
    return postgres_url(pooler, CONSOLE_USER, password, CONSOLE_DATABASE)
