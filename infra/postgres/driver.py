"""The one owner of the PostgreSQL driver: it connects, and it maps every psycopg error.

Like patroni's ``psycopg.py``: the rest of the code opens connections and runs statements only
through here, and every driver error leaves as one ServerError line (a URL psycopg cannot parse
as a UsageError). Messages name host, port, user and database, never the password (it is
scrubbed even if libpq were to echo the connection string).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from infra.errors import ServerError, UsageError
from infra.postgres.statements import Statement

Connection = psycopg.Connection[tuple[Any, ...]]

CONNECT_TIMEOUT_S = 10
APPLICATION_NAME = "persistence-infra"
# Every session the tooling opens resolves names in pg_catalog first and never in a schema a
# service controls, so a function or operator a service login planted in ``public`` cannot
# shadow one the tooling calls. Set at connection start-up, it also overrides any
# ``ALTER DATABASE/ROLE ... SET search_path`` a service made.
SAFE_OPTIONS = "-c search_path=pg_catalog,pg_temp"
# Every wait on a lock a service's session can hold (a table its migrator locked, its database)
# ends after this many seconds: one service never stalls the tooling's work for the others.
LOCK_TIMEOUT_ENV = "PERSISTENCE_LOCK_TIMEOUT_S"
DEFAULT_LOCK_TIMEOUT_S = 30.0


def lock_timeout_s() -> float:
    """The bound on lock waits: ``$PERSISTENCE_LOCK_TIMEOUT_S`` seconds, else 30."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_LOCK_TIMEOUT_S
    except ValueError:
        raise UsageError(
            f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds; use e.g. 30"
        ) from None
    if value <= 0:
        raise UsageError(f"{LOCK_TIMEOUT_ENV}={raw!r} must be more than 0 seconds, e.g. 30")
    return value


def lock_timeout_ms() -> int:
    return max(1, round(lock_timeout_s() * 1000))


def lock_wait_hint(where: str) -> str:
    """The one line for a lock wait that ran out: what waited, the bound, and the fix."""
    return (
        f"{where}: a session holds a lock it needs; gave up after {lock_timeout_s():g} s "
        f"({LOCK_TIMEOUT_ENV}); end that session (pg_terminate_backend, see pg_locks) or rerun"
    )


def describe(url: str, dbname: str | None = None) -> str:
    """``user@host:port/db`` for messages, without the password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable admin URL>"
    return (
        f"{params.get('user', '?')}@{params.get('host', 'localhost')}:"
        f"{params.get('port', 5432)}/{dbname or params.get('dbname', '')}"
    )


def scrub(message: str, url: str) -> str:
    """The first line of a server message with any password from ``url`` removed."""
    try:
        password = str(conninfo_to_dict(url).get("password") or "")
    except psycopg.ProgrammingError:
        password = ""
    line = next((part.strip() for part in message.splitlines() if part.strip()), "")
    return line.replace(password, "********") if password else line


def params(url: str) -> dict[str, str]:
    """The URL's connection parameters; a URL libpq cannot parse is the user's mistake."""
    try:
        parsed = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise UsageError(
            "--admin-url is not a PostgreSQL URL; use postgresql://USER:PASSWORD@HOST:PORT/postgres"
        ) from None
    return {key: str(value) for key, value in parsed.items() if value is not None}


def url_with(url: str, **changes: str) -> str:
    """``url`` with some parameters replaced (``dbname``, ``user``, ``password``...)."""
    return make_conninfo("", **{**params(url), **changes})


def message(error: psycopg.Error, url: str = "") -> str:
    """What the server said, in one line, without the password."""
    return error.diag.message_primary or scrub(str(error), url) or type(error).__name__


def execute(conn: Connection, statement: Statement, context: str = "") -> None:
    """Run one planned statement; a failure names the statement (redacted text) and why."""
    try:
        conn.execute(statement.query)
    except errors.LockNotAvailable:
        where = f"{context}: " if context else ""
        raise ServerError(lock_wait_hint(f"{where}`{statement.text}`")) from None
    except psycopg.Error as error:
        where = f"{context}: " if context else ""
        raise ServerError(f"{where}`{statement.text}` failed: {message(error)}") from None


@contextmanager
def session(
    url: str, dbname: str | None = None, *, autocommit: bool = False, wait_on_locks: bool = False
) -> Iterator[Connection]:
    """A connection that is closed at the end; any driver error inside becomes a ServerError.

    Lock waits are bounded (``lock_timeout``) unless ``wait_on_locks``: only for the tool's own
    database, where no service login can hold a lock.
    """
    key = (url, dbname, wait_on_locks)
    reusable = autocommit and _reused(key)
    conn = _take(key) if reusable else None
    if conn is None:
        conn = connect(url, dbname=dbname, autocommit=autocommit, wait_on_locks=wait_on_locks)
        if reusable:
            # DISCARD ALL drops prepared statements behind psycopg's back (it notices only the
            # first DISCARD it sees): a session meant to be kept never prepares any.
            conn.prepare_threshold = None
    kept = False
    try:
        with errors_mapped(url, dbname):
            yield conn
        kept = reusable and _give(key, conn)
    finally:
        if not kept:
            conn.close()


SessionKey = tuple[str, str | None, bool]  # URL, database (None: the URL's own), wait_on_locks


@dataclass
class _Reuse:
    databases: frozenset[str | None]
    idle: dict[SessionKey, list[Connection]] = field(default_factory=dict)


_reuse: _Reuse | None = None
_reuse_guard = threading.Lock()


@contextmanager
def reusing(*databases: str | None) -> Iterator[None]:
    """Within the block, autocommit ``session``s to these databases (None: the URL's own, the
    admin's maintenance database) are kept open and handed out again, reset by ``DISCARD
    ALL``: a command's many small catalog steps cost one login per database, not one each.

    Never a service's database: an idle session there would stand in the way of its rename or
    drop. Every kept session is closed when the block ends; a nested block changes nothing.
    """
    global _reuse
    with _reuse_guard:
        if _reuse is not None:
            outer = True
        else:
            outer, _reuse = False, _Reuse(frozenset(databases))
    if outer:
        yield
        return
    try:
        yield
    finally:
        with _reuse_guard:
            scope, _reuse = _reuse, None
        for kept in scope.idle.values() if scope else ():
            for conn in kept:
                conn.close()


def _reused(key: SessionKey) -> bool:
    with _reuse_guard:
        return _reuse is not None and key[1] in _reuse.databases


def _take(key: SessionKey) -> Connection | None:
    """A kept session for ``key`` that still answers (a server restarted since, or a session
    ended by an admin, is closed and skipped), or None."""
    while True:
        with _reuse_guard:
            kept = _reuse.idle.get(key) if _reuse is not None else None
            if not kept:
                return None
            conn = kept.pop()
        try:
            conn.execute("SELECT 1")
            return conn
        except psycopg.Error:
            conn.close()


def _give(key: SessionKey, conn: Connection) -> bool:
    """Keep ``conn`` for the next session on ``key``, reset as if new; False: close it."""
    if conn.closed or conn.broken:
        return False
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return False
    try:
        conn.execute("DISCARD ALL")  # roles, settings, advisory locks, temp tables, prepared
    except psycopg.Error:
        return False
    with _reuse_guard:
        if _reuse is None or key[1] not in _reuse.databases:
            return False
        _reuse.idle.setdefault(key, []).append(conn)
    return True


@contextmanager
def errors_mapped(url: str, dbname: str | None = None) -> Iterator[None]:
    """Any driver error inside becomes a ServerError, as ``session`` maps them: for a step
    whose failure the caller undoes in the same open (autocommit) session."""
    try:
        yield
    except errors.LockNotAvailable:
        raise ServerError(lock_wait_hint(f"PostgreSQL {describe(url, dbname)}")) from None
    except psycopg.Error as error:
        raise ServerError(f"PostgreSQL {describe(url, dbname)}: {scrub(str(error), url)}") from None


def connect(
    url: str, *, dbname: str | None = None, autocommit: bool = False, wait_on_locks: bool = False
) -> Connection:
    """Open a connection (to ``dbname`` instead of the URL's database, if given), its lock
    waits bounded by ``lock_timeout`` unless ``wait_on_locks``."""
    overrides: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "application_name": APPLICATION_NAME,
    }
    try:
        given = str(conninfo_to_dict(url).get("options") or "")
    except psycopg.ProgrammingError:
        given = ""
    timeout = 0 if wait_on_locks else lock_timeout_ms()
    overrides["options"] = f"{given} {SAFE_OPTIONS} -c lock_timeout={timeout}".strip()
    if dbname is not None:
        overrides["dbname"] = dbname
    try:
        return psycopg.connect(url, autocommit=autocommit, **overrides)
    except psycopg.Error as error:
        raise ServerError(
            f"cannot connect to PostgreSQL as {describe(url, dbname)}: {scrub(str(error), url)}"
        ) from None


def password_rejected(url: str, user: str, password: str, dbname: str) -> bool:
    """True only if the server at ``url`` refuses ``password`` for login ``user``."""
    try:
        params = {k: v for k, v in conninfo_to_dict(url).items() if v is not None}
    except psycopg.ProgrammingError:
        return False
    params.update(user=user, password=password, dbname=dbname)
    params.update(connect_timeout=CONNECT_TIMEOUT_S, application_name=APPLICATION_NAME)
    try:
        psycopg.connect(make_conninfo("", **params)).close()
    except psycopg.OperationalError as error:
        return "password authentication failed" in str(error)
    return False


def rows(conn: Connection, query: str) -> list[dict[str, Any]]:
    """``query``'s rows, keyed by column name."""
    cursor = conn.execute(query)
    names = [column.name for column in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def console_rows(url: str, command: str) -> list[dict[str, Any]]:
    """One ``SHOW ...`` of PgBouncer's console at ``url``, as rows keyed by column name.

    The console is no PostgreSQL: no ``options`` at start-up (``connect`` sends some), no
    transactions, no prepared statements.
    """
    try:
        with psycopg.connect(
            url, autocommit=True, prepare_threshold=None, connect_timeout=CONNECT_TIMEOUT_S
        ) as conn:
            return rows(conn, command)
    except psycopg.Error as error:
        raise ServerError(f"PgBouncer console {describe(url)}: {scrub(str(error), url)}") from None
