"""The short-lived login the backup tooling uses inside a service's databases.

``pg_restore``, ``pg_dump`` and the row counts run code the service's own logins wrote: CHECK
constraints and defaults on every copied row, materialized views on refresh, index expressions,
row-level security policies. Run as the admin, that code holds the admin's CREATEROLE and
memberships, and ``pg_restore --role`` alone does not help: a planted function can
``RESET ROLE`` back to the session's login. So the session's login itself is a throwaway role
that is a member of the service's owner role and of nothing else: whatever runs there can do no
more than the service's migrator already can.

One run at a time per service holds the role (an advisory lock in the tooling database, where
no service login can take it: infra.postgres.registry), so two verifies or a backup and a verify
of one service never collide on it or on the scratch databases. The role expires on its own
(VALID UNTIL) if a run is killed before it drops it; the next run drops the leftover first. A
role under that name without our marker is refused, never taken over.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta

from psycopg import sql

from infra import naming
from infra.errors import ServerError
from infra.postgres import registry
from infra.postgres.driver import Connection, execute, session, url_with
from infra.postgres.model import MARKER
from infra.postgres.statements import build

TOOL_MARKER = f"{MARKER} tool-login"
TOOL_LIFETIME = timedelta(hours=12)
TOOL_CONNECTIONS = 8


def _comment(conn: Connection, role: str) -> str | None:
    row = conn.execute(
        "SELECT coalesce(pg_catalog.shobj_description(oid, 'pg_authid'), '') "
        "FROM pg_catalog.pg_roles WHERE rolname = %s",
        (role,),
    ).fetchone()
    return None if row is None else str(row[0])


def _drop(conn: Connection, role: str) -> None:
    execute(conn, build("drop_role", role=sql.Identifier(role)))


@contextmanager
def service_login(admin_url: str, service: str) -> Iterator[str]:
    """A connection URL for ``<service>__tool`` (member of ``<service>_owner`` only)."""
    login = naming.tool_login(service)
    owner = naming.owner_role(service)
    password = secrets.token_urlsafe(32)
    with registry.advisory_lock(admin_url, f"tool:{service}"):
        _create(admin_url, login, owner, password)
        try:
            yield url_with(admin_url, user=login, password=password)
        finally:
            # If it owns something a planted function made, it stays and expires on its own.
            # A session of its own: the admin's is not held while the login is in use, so the
            # caller's own admin steps reuse it (infra.postgres.driver.reusing).
            with suppress(ServerError), session(admin_url, autocommit=True) as conn:
                _drop(conn, login)


def _create(admin_url: str, login: str, owner: str, password: str) -> None:
    """The login afresh (a leftover of a killed run dropped first), a member of ``owner``."""
    with session(admin_url, autocommit=True) as conn:
        comment = _comment(conn, login)
        if comment is not None and not comment.startswith(TOOL_MARKER):
            raise ServerError(
                f"role {login} exists but was not created by this tool (no '{TOOL_MARKER}' "
                "comment); refusing to use it: drop or rename it"
            )
        if _comment(conn, owner) is None:
            raise ServerError(f"role {owner} does not exist: run `db apply` first")
        if comment is not None:
            _drop(conn, login)  # a leftover of a killed run
        until = (datetime.now(UTC) + TOOL_LIFETIME).isoformat()
        ident = sql.Identifier(login)
        with conn.transaction():
            execute(
                conn,
                build(
                    "create_tool_login",
                    role=ident,
                    limit=sql.Literal(TOOL_CONNECTIONS),
                    until=sql.Literal(until),
                    password=password,
                ),
            )
            execute(conn, build("comment_role", role=ident, comment=sql.Literal(TOOL_MARKER)))
            execute(
                conn,
                build("grant_membership", group=sql.Identifier(owner), member=ident),
            )
