"""The tool's own database: the registry of the databases it created, and its advisory locks.

A comment on a database proves nothing: the service's owner role owns its database and may
``COMMENT ON DATABASE`` it (so may code a restore runs as that role). What proves "this tool
created that database" lives in ``persistence_tooling`` instead: a database owned by the admin,
CONNECT revoked from PUBLIC, so no service login can connect to it (with or without pg_hba.conf,
as on Cloud SQL), write its registry or take one of the tool's advisory locks there.

The registry binds each database to its OID: a rename keeps it ours, a database dropped and
made again by someone else under the same name is not. A database made before the registry
existed is adopted once, only when our marked owner role owns it (services cannot create
databases or give them away: both need CREATEDB, which no service role has).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

from psycopg import errors, sql

from infra import naming
from infra.errors import ServerError
from infra.postgres.driver import Connection, session
from infra.postgres.model import MARKER
from infra.postgres.sqlfiles import blocks

TOOLING = naming.TOOLING_DATABASE
# pg_advisory_lock(class, hashtext(key)), always taken in the tooling database.
LOCK_CLASS = 0x7E57
LIVE = "live"  # the service's own database, converged by apply
SCRATCH = "scratch"  # a database the backup tooling created (verify, restore)

OPEN_WAIT_S = 10.0
_ready: set[str] = set()  # admin URLs whose tooling database this process has checked


def statement(name: str, **slots: sql.Composable) -> sql.SQL | sql.Composed:
    template = sql.SQL(blocks("tooling.sql")[name])
    return template.format(**slots) if slots else template


def _fetch(conn: Connection, name: str, **values: Any) -> tuple[Any, ...] | None:
    return conn.execute(statement(name), values or None).fetchone()


def _create(conn: Connection) -> None:
    ident = sql.Identifier(TOOLING)
    try:
        conn.execute(statement("create_tooling_database", database=ident))
    except (errors.DuplicateDatabase, errors.UniqueViolation):
        return  # another run made it at the same moment (it opens it; `ensure` checks)
    conn.execute(statement("revoke_all", database=ident))
    conn.execute(statement("open_database", database=ident))


def ensure(admin_url: str) -> None:
    """Create the tooling database and its registry if missing; refuse one we did not make."""
    if admin_url in _ready:
        return
    with session(admin_url, autocommit=True) as conn:
        if _fetch(conn, "tooling_database", database=TOOLING) is None:
            _create(conn)
        row = _settled(conn)
        admin = conn.execute("SELECT current_user").fetchone()
        assert admin is not None
        if row[0] != admin[0]:
            raise ServerError(
                f"database {TOOLING} is owned by {row[0]}, not by the admin {admin[0]}: it must "
                "be the tool's own; as a superuser rename it (ALTER DATABASE "
                f"{TOOLING} RENAME TO ...) and rerun"
            )
        if row[1] or not row[2]:  # others may connect, or a creator was killed before opening
            _alter(conn, "revoke_all")
        if not row[2]:
            _alter(conn, "open_database")
    with _session(admin_url) as tool:
        key = {"class": LOCK_CLASS, "key": "registry"}
        _fetch(tool, "lock", **key)
        tool.execute(statement("create_registry"))
        tool.execute(statement("forget_dropped"))
        _fetch(tool, "unlock", **key)
    _ready.add(admin_url)


def _settled(conn: Connection) -> tuple[Any, ...]:
    """The tooling database's row once it is open; after OPEN_WAIT_S, as it is (a creator
    killed between creating it closed and opening it never opens it: the caller finishes)."""
    deadline = time.monotonic() + OPEN_WAIT_S
    while True:
        row = _fetch(conn, "tooling_database", database=TOOLING)
        assert row is not None  # created above, and only a superuser could have dropped it
        if row[2] or time.monotonic() > deadline:
            return row
        time.sleep(0.2)


def _alter(conn: Connection, name: str) -> None:
    """A REVOKE or ALTER of the tooling database. Two runs changing its catalog row at once
    make one fail with "tuple concurrently updated": the other did the same, so try again."""
    for attempt in range(5):
        try:
            conn.execute(statement(name, database=sql.Identifier(TOOLING)))
            return
        except errors.InternalError_ as error:
            if "tuple concurrently updated" not in str(error) or attempt == 4:
                raise
            time.sleep(0.1 * (attempt + 1))


def _session(admin_url: str) -> AbstractContextManager[Connection]:
    """The admin's session in the tooling database (open: ``ensure`` waited for that)."""
    return session(admin_url, TOOLING, autocommit=True, wait_on_locks=True)


@contextmanager
def tooling_session(admin_url: str) -> Iterator[Connection]:
    """The admin's connection to the tooling database (created first if missing)."""
    ensure(admin_url)
    with ExitStack() as opened:
        try:
            conn = opened.enter_context(_session(admin_url))
        except ServerError:  # gone since this process checked it (a server rebuilt on that URL)
            _ready.discard(admin_url)
            ensure(admin_url)
            conn = opened.enter_context(_session(admin_url))
        yield conn


def lock(conn: Connection, key: str) -> None:
    """Take the tool's lock ``key`` on a tooling-database connection, until it closes."""
    _fetch(conn, "lock", **{"class": LOCK_CLASS, "key": key})


@contextmanager
def advisory_lock(admin_url: str, key: str, *, wait: bool = True) -> Iterator[bool]:
    """Hold the tool's lock ``key`` (in the tooling database) for the block; with
    ``wait=False`` yield False at once if another run holds it."""
    params = {"class": LOCK_CLASS, "key": key}
    with tooling_session(admin_url) as conn:
        row = _fetch(conn, "lock" if wait else "try_lock", **params)
        held = wait or (row is not None and row[0] == "true")
        try:
            yield held
        finally:
            if held:
                _fetch(conn, "unlock", **params)


def exists(admin_url: str) -> bool:
    with session(admin_url, autocommit=True) as conn:
        return _fetch(conn, "tooling_database", database=TOOLING) is not None


def read(
    admin_url: str, services: Sequence[str], databases: Sequence[str] = ()
) -> dict[str, tuple[str, str]]:
    """``{database name: (service, purpose)}`` for the services' registered databases (and any
    registered under ``databases``); empty (nothing created) before the tooling database is.

    Once ``ensure`` has seen the tooling database, it is not looked up again before each read
    (a connection saved on every one of the many checks a restore makes)."""
    known = admin_url in _ready
    if not known and not exists(admin_url):
        return {}
    return _read(admin_url, services, databases, known=known)


def read_existing(
    admin_url: str, services: Sequence[str], databases: Sequence[str] = ()
) -> dict[str, tuple[str, str]]:
    """``read`` for a caller that already saw the tooling database in the catalog: one
    connection, to the tooling database, and one query."""
    return _read(admin_url, services, databases, known=True)


def _read(
    admin_url: str, services: Sequence[str], databases: Sequence[str], *, known: bool
) -> dict[str, tuple[str, str]]:
    """The registry's rows; ``known``: the tooling database was there a moment ago."""
    try:
        with _session(admin_url) as conn:
            rows = conn.execute(
                statement("registered"),
                {"services": list(services), "databases": list(databases)},
            ).fetchall()
    except ServerError:
        if known and not exists(admin_url):  # gone since (a server rebuilt on that URL)
            _ready.discard(admin_url)
            return {}
        if admin_url in _ready:
            raise
        return {}  # the registry table is not there yet: nothing is registered
    return {str(name): (str(service), str(purpose)) for name, service, purpose in rows}


def register(admin_url: str, database: str, service: str, purpose: str) -> None:
    """Record ``database`` (by its OID) as created by this tool for ``service``."""
    with tooling_session(admin_url) as conn:
        conn.execute(
            statement("register"), {"database": database, "service": service, "purpose": purpose}
        )


def _owner_is_ours(conn: Connection, owner: str, service: str) -> bool:
    """Owned by the service's owner role, which carries our marker."""
    if owner != naming.owner_role(service):
        return False
    row = conn.execute(
        "SELECT coalesce(pg_catalog.shobj_description(oid, 'pg_authid'), '') "
        "FROM pg_catalog.pg_roles WHERE rolname = %s",
        (owner,),
    ).fetchone()
    return row is not None and str(row[0]).startswith(MARKER)


def is_template(conn: Connection, database: str) -> bool:
    row = _fetch(conn, "database_owner", database=database)
    return row is not None and bool(row[1])


def is_ours(admin_url: str, database: str, service: str) -> bool | None:
    """None if ``database`` does not exist; whether this tool made it for ``service`` (one our
    marked owner role owns but the registry does not hold yet is adopted, once)."""
    return are_ours(admin_url, [database], service)[database]


def are_ours(admin_url: str, databases: Sequence[str], service: str) -> dict[str, bool | None]:
    """``is_ours`` for several databases of ``service`` at once: one admin session and one
    registry read for all of them (a restore checks both names it swaps)."""
    adoptable: dict[str, bool] = {}
    with session(admin_url, autocommit=True) as conn:
        for database in databases:
            row = _fetch(conn, "database_owner", database=database)
            if row is not None:
                adoptable[database] = _owner_is_ours(conn, str(row[0]), service)
    found = read(admin_url, [service], list(adoptable)) if adoptable else {}
    answer: dict[str, bool | None] = dict.fromkeys(databases)
    for database, marked in adoptable.items():
        if database in found:
            answer[database] = found[database][0] == service
            continue
        if marked:
            live = database == naming.database_name(service)
            register(admin_url, database, service, LIVE if live else SCRATCH)
        answer[database] = marked
    return answer


def check_ours(admin_url: str, database: str, service: str) -> bool:
    """False if ``database`` does not exist, True if it is ours; otherwise refuse in one line."""
    return check_all_ours(admin_url, [database], service)[database]


def check_all_ours(admin_url: str, databases: Sequence[str], service: str) -> dict[str, bool]:
    """``check_ours`` for several databases of ``service``, refusing at the first foreign one."""
    answer = are_ours(admin_url, databases, service)
    for database in databases:
        if answer[database] is False:
            raise ServerError(
                f"database {database} exists but this tool did not create it for service "
                f"{service} (not in {TOOLING}'s registry, nor owned by "
                f"{naming.owner_role(service)}); left alone: rename it "
                f"(ALTER DATABASE {database} RENAME TO ...) and rerun"
            )
    return {database: bool(ours) for database, ours in answer.items()}
