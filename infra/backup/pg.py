"""PostgreSQL plumbing for backups: libpq settings, the client binaries, catalog snapshots.

Passwords reach pg_dump/pg_restore only through the environment (PGPASSWORD), never argv.
Every identifier goes through ``psycopg.sql.Identifier``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from infra.errors import ServerError, UsageError
from infra.postgres import driver

PG_BIN_ENV = "PERSISTENCE_PG_BIN"
DEFAULT_PG_BIN = Path("/usr/lib/postgresql/15/bin")


def binary(name: str) -> str:
    """pg_dump/pg_restore of the server's major version (Debian's postgresql-15 layout)."""
    directory = Path(os.environ.get(PG_BIN_ENV, DEFAULT_PG_BIN))
    candidate = directory / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise UsageError(
            f"{name} not found in {directory} or on PATH: apt-get install postgresql-15"
        )
    return found


def _params(url: str) -> dict[str, str]:
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise UsageError(
            "--admin-url is not a PostgreSQL URL; use postgresql://USER:PASSWORD@HOST:PORT/postgres"
        ) from None
    return {key: str(value) for key, value in params.items() if value is not None}


def with_password(url: str, password: str) -> str:
    """The admin URL with the stack's admin password filled in when it carries none."""
    params = _params(url)
    if "password" not in params:
        params["password"] = password
    return make_conninfo("", **params)


def database_url(url: str, database: str) -> str:
    params = _params(url)
    params["dbname"] = database
    return make_conninfo("", **params)


def libpq_environment(url: str, database: str) -> dict[str, str]:
    """Environment for a client binary: the password travels here, not on the command line."""
    params = _params(url)
    names = {
        "host": "PGHOST",
        "port": "PGPORT",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "sslmode": "PGSSLMODE",
        "sslrootcert": "PGSSLROOTCERT",
        "sslcert": "PGSSLCERT",
        "sslkey": "PGSSLKEY",
        "connect_timeout": "PGCONNECT_TIMEOUT",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({names[key]: value for key, value in params.items() if key in names})
    env["PGDATABASE"] = database
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    return env


@contextmanager
def connect(
    url: str, database: str | None = None, *, autocommit: bool = False
) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A connection through the one driver module; statement errors become ServerError too."""
    conn = driver.connect(url, dbname=database, autocommit=autocommit)
    try:
        yield conn
    except psycopg.Error as error:
        raise ServerError(
            f"PostgreSQL {driver.describe(url, database)}: {driver.scrub(str(error), url)}"
        ) from None
    finally:
        conn.close()


def act_as(conn: psycopg.Connection[tuple[Any, ...]], role: str) -> None:
    """``SET ROLE`` for the rest of the session (committed, so a later rollback keeps it)."""
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    if not conn.autocommit:
        conn.commit()


@dataclass(frozen=True)
class Contents:
    """What a database holds, as the manifest records it and verify compares it."""

    row_counts: dict[str, int]
    sequences: dict[str, int]
    large_objects: int


def contents(conn: psycopg.Connection[tuple[Any, ...]]) -> Contents:
    """Exact row counts per table, sequence positions and the number of large objects."""
    tables = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2"
    ).fetchall()
    counts: dict[str, int] = {}
    for schema, table in tables:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(str(schema)), sql.Identifier(str(table))
        )
        row = conn.execute(query).fetchone()
        counts[f"{schema}.{table}"] = int(str(row[0])) if row else 0
    sequences: dict[str, int] = {}
    for schema, name in conn.execute(
        "SELECT schemaname, sequencename FROM pg_sequences "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
    ).fetchall():
        query = sql.SQL("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {}.{}").format(
            sql.Identifier(str(schema)), sql.Identifier(str(name))
        )
        row = conn.execute(query).fetchone()
        sequences[f"{schema}.{name}"] = int(str(row[0])) if row else 0
    row = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
    return Contents(counts, sequences, int(str(row[0])) if row else 0)


def compare(expected: Contents, actual: Contents) -> list[str]:
    """Every difference, one line each (empty when they match)."""
    problems = []
    for label, want, got in (
        ("rows", expected.row_counts, actual.row_counts),
        ("sequence", expected.sequences, actual.sequences),
    ):
        for name in sorted(set(want) | set(got)):
            if want.get(name) != got.get(name):
                problems.append(
                    f"{label} {name}: backup says {want.get(name)}, restored has {got.get(name)}"
                )
    if expected.large_objects != actual.large_objects:
        problems.append(
            f"large objects: backup says {expected.large_objects}, "
            f"restored has {actual.large_objects}"
        )
    return problems


def server_version(conn: psycopg.Connection[tuple[Any, ...]]) -> str:
    row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


def database_exists(admin_url: str, database: str) -> bool:
    with connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        return row is not None


def database_names(admin_url: str, prefix: str) -> list[str]:
    """The databases whose names start with ``prefix``."""
    with connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1", (prefix,)
        ).fetchall()
        return [str(row[0]) for row in rows]


def holds_data(admin_url: str, database: str) -> bool:
    """True if the database has any table, view, sequence, function or large object of its own.

    Read from the catalog only, so the admin needs no privilege on the service's objects. A
    database ``pulumi up`` just provisioned (roles, default privileges, extensions) holds none.
    """
    with connect(admin_url, database, autocommit=True) as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            "  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
            "  AND n.nspname NOT LIKE 'pg\\_%' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
            "  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
            "    AND d.objid = c.oid AND d.deptype = 'e'))"
            " OR EXISTS (SELECT 1 FROM pg_largeobject_metadata)"
        ).fetchone()
        return bool(row and row[0])


def drop_database(admin_url: str, database: str) -> None:
    """Drop (force-closing sessions); no-op if it does not exist."""
    with connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def create_database(admin_url: str, database: str, owner: str | None = None) -> None:
    """A scratch database nobody else may connect to: created closed, PUBLIC's rights revoked."""
    ident = sql.Identifier(database)
    with connect(admin_url, autocommit=True) as conn:
        if owner is None:
            conn.execute(sql.SQL("CREATE DATABASE {} ALLOW_CONNECTIONS false").format(ident))
        else:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} ALLOW_CONNECTIONS false").format(
                    ident, sql.Identifier(owner)
                )
            )
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
        conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(ident))


def allow_connections(admin_url: str, database: str, allowed: bool) -> None:
    """Stop (or resume) new sessions, so a rename cannot race a reconnecting client."""
    with connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                sql.Identifier(database), sql.Literal(allowed)
            )
        )


def rename_database(admin_url: str, old: str, new: str) -> None:
    """Rename after closing the sessions on it (a rename needs the database idle).

    Only client sessions of non-superuser roles are ours to end (waiting up to 5 s each for them
    to exit): a non-superuser admin may not signal superuser processes, and PostgreSQL's own
    RENAME already stops autovacuum workers on the database itself.
    """
    with connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(a.pid, 5000) FROM pg_stat_activity a "
            "JOIN pg_roles r ON r.oid = a.usesysid "
            "WHERE a.datname = %s AND a.pid <> pg_backend_pid() "
            "AND a.backend_type = 'client backend' AND NOT r.rolsuper",
            (old,),
        )
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(old), sql.Identifier(new)
            )
        )
