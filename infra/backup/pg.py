"""PostgreSQL plumbing for backups: libpq settings, the client binaries, catalog snapshots.

Connections come from the one driver module (infra.postgres.driver), which maps every error;
the SQL lives in ``sql/backup.sql``. Passwords reach pg_dump/pg_restore only through the
environment (PGPASSWORD), never argv. Every identifier goes through ``psycopg.sql.Identifier``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import errors, sql

from infra.errors import ServerError, UsageError
from infra.postgres import driver, registry
from infra.postgres.driver import Connection, session
from infra.postgres.sqlfiles import blocks

PG_BIN_ENV = "PERSISTENCE_PG_BIN"
DEFAULT_PG_BIN = Path("/usr/lib/postgresql/15/bin")


def statement(name: str, **slots: sql.Composable) -> sql.SQL | sql.Composed:
    """A block of ``sql/backup.sql``, its ``{slots}`` filled with Identifier/Literal only."""
    template = sql.SQL(blocks("backup.sql")[name])
    return template.format(**slots) if slots else template


def fetch_one(conn: Connection, name: str, **values: Any) -> tuple[Any, ...] | None:
    """The first row of the ``sql/backup.sql`` query ``name``, values bound as parameters."""
    return conn.execute(statement(name), values or None).fetchone()


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


def with_password(url: str, password: str) -> str:
    """The admin URL with the stack's admin password filled in when it carries none."""
    return url if "password" in driver.params(url) else driver.url_with(url, password=password)


def database_url(url: str, database: str) -> str:
    return driver.url_with(url, dbname=database)


def libpq_environment(url: str, database: str) -> dict[str, str]:
    """Environment for a client binary: the password travels here, not on the command line."""
    params = driver.params(url)
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


def act_as(conn: Connection, role: str) -> None:
    """``SET ROLE`` for the rest of the session (committed, so a later rollback keeps it)."""
    conn.execute(statement("set_role", role=sql.Identifier(role)))
    if not conn.autocommit:
        conn.commit()


@dataclass(frozen=True)
class Contents:
    """What a database holds, as the manifest records it and verify compares it."""

    row_counts: dict[str, int]
    sequences: dict[str, int]
    large_objects: int


def _positions(conn: Connection, listing: str, query: str, slot: str) -> dict[str, int]:
    """``schema.name`` -> the number ``query`` reads from each object ``listing`` names."""
    found: dict[str, int] = {}
    for schema, name in conn.execute(statement(listing)).fetchall():
        ident = sql.Identifier(str(schema), str(name))
        try:
            row = conn.execute(statement(query, **{slot: ident})).fetchone()
        except errors.LockNotAvailable:  # a service's session holds it: bounded, then named
            where = f"reading {conn.info.dbname}.{schema}.{name}"
            raise ServerError(driver.lock_wait_hint(where)) from None
        found[f"{schema}.{name}"] = int(str(row[0])) if row else 0
    return found


def contents(conn: Connection) -> Contents:
    """Exact row counts per table, sequence positions and the number of large objects."""
    counts = _positions(conn, "tables", "count_rows", "table")
    sequences = _positions(conn, "sequences", "sequence_position", "sequence")
    row = fetch_one(conn, "large_objects")
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


def server_version(conn: Connection) -> str:
    row = fetch_one(conn, "server_version")
    return str(row[0]) if row else "unknown"


def database_exists(admin_url: str, database: str) -> bool:
    with session(admin_url, autocommit=True) as conn:
        return exists(conn, database)


def exists(conn: Connection, database: str) -> bool:
    """``database_exists`` in an open admin session."""
    return fetch_one(conn, "database_exists", database=database) is not None


def database_names(admin_url: str, prefix: str) -> list[str]:
    """The databases whose names start with ``prefix``."""
    with session(admin_url, autocommit=True) as conn:
        rows = conn.execute(statement("database_names"), {"prefix": prefix}).fetchall()
        return [str(row[0]) for row in rows]


def holds_data(admin_url: str, database: str) -> bool:
    """True if the database has any table, view, sequence, function or large object of its own.

    Read from the catalog only, so the admin needs no privilege on the service's objects. A
    database ``pulumi up`` just provisioned (roles, default privileges, extensions) holds none.
    """
    with session(admin_url, database, autocommit=True) as conn:
        row = fetch_one(conn, "holds_data")
        return bool(row and row[0])


def drop_database(admin_url: str, database: str, service: str) -> None:
    """Drop (force-closing sessions) a database this tool made for ``service``; no-op if it does
    not exist, refused in one line if it is not ours (infra.postgres.registry). A template
    (IS_TEMPLATE, which its owner may set) is made an ordinary database first."""
    if not registry.check_ours(admin_url, database, service):
        return
    ident = sql.Identifier(database)
    with session(admin_url, autocommit=True) as conn:
        if registry.is_template(conn, database):
            conn.execute(statement("not_template", database=ident))
        conn.execute(statement("drop_database", database=ident))


def create_database(admin_url: str, database: str, service: str, owner: str | None = None) -> None:
    """A scratch database nobody else may connect to: created closed, PUBLIC's rights revoked,
    registered as made by this tool for ``service`` before it opens."""
    ident = sql.Identifier(database)
    with session(admin_url, autocommit=True) as conn:
        if owner is None:
            conn.execute(statement("create_database", database=ident))
        else:
            conn.execute(
                statement("create_owned_database", database=ident, owner=sql.Identifier(owner))
            )
        conn.execute(statement("revoke_public", database=ident))
        registry.register(admin_url, database, service, registry.SCRATCH)
        conn.execute(statement("allow_connections", database=ident, allowed=sql.Literal(True)))


def allow_connections(admin_url: str, database: str, allowed: bool) -> None:
    """Stop (or resume) new sessions, so a rename cannot race a reconnecting client."""
    with session(admin_url, autocommit=True) as conn:
        set_allow_connections(conn, database, allowed)


def set_allow_connections(conn: Connection, database: str, allowed: bool) -> None:
    """``allow_connections`` in an open admin session."""
    conn.execute(
        statement(
            "allow_connections", database=sql.Identifier(database), allowed=sql.Literal(allowed)
        )
    )


def rename_database(admin_url: str, old: str, new: str, service: str) -> None:
    """Rename after closing the sessions on it (a rename needs the database idle); only a
    database this tool made for ``service`` (infra.postgres.registry).

    Only client sessions of non-superuser roles are ours to end (waiting up to 5 s each for them
    to exit): a non-superuser admin may not signal superuser processes, and PostgreSQL's own
    RENAME already stops autovacuum workers on the database itself.
    """
    if not registry.check_ours(admin_url, old, service):
        raise ServerError(f"database {old} does not exist; nothing renamed")
    with session(admin_url, autocommit=True) as conn:
        rename_checked(conn, old, new)


def rename_checked(conn: Connection, old: str, new: str) -> None:
    """``rename_database`` in an open admin session, for a caller that has already checked
    that ``old`` is this tool's (``registry.check_all_ours``)."""
    conn.execute(statement("end_sessions"), {"database": old})
    conn.execute(statement("rename_database", old=sql.Identifier(old), new=sql.Identifier(new)))
