"""A command's admin sessions are kept and handed out again, and each one starts clean (issue 22).

Inside ``driver.reusing`` (every command that works on PostgreSQL runs in one) a finished
autocommit session to the admin's maintenance database or the tooling database is kept, reset by
``DISCARD ALL``, and the next session on the same URL gets it instead of a new login. What must
hold, against a real server: a later step never inherits an earlier step's role, settings,
advisory locks, temporary tables or prepared statements; a session that failed or that the server
ended is never handed out; a service's database is never held open (it would block its rename
or drop); and nothing outlives the block.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from infra.errors import ServerError
from infra.postgres import driver
from infra.postgres.driver import Connection, session
from tests.servers.postgres import PostgresServer

PROBE_ROLE = "reuse_probe"
PROBE_DATABASE = "reuse_probe_db"


def _pid(conn: Connection) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def _alive(server: PostgresServer, pid: int, *, want: bool, seconds: float = 5.0) -> bool:
    """Whether backend ``pid`` exists, polled until it is as ``want``ed (backends exit a moment
    after their client closes) or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        query = f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid:d}"  # noqa: S608 - an int
        found = server.superuser_psql(query)
        alive = found == "1"
        if alive == want or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


@pytest.fixture(scope="module")
def probe_role(postgres: PostgresServer) -> Iterator[str]:
    """A role the admin may SET ROLE to."""
    admin = postgres.admin_user
    postgres.superuser_psql(f"CREATE ROLE {PROBE_ROLE} NOLOGIN; GRANT {PROBE_ROLE} TO {admin}")
    yield PROBE_ROLE
    postgres.superuser_psql(f"DROP ROLE IF EXISTS {PROBE_ROLE}")


def test_sessions_in_a_block_share_one_login_and_each_starts_clean(
    postgres: PostgresServer, probe_role: str
) -> None:
    url = postgres.admin_url
    with driver.reusing(None):
        with session(url, autocommit=True) as conn:
            first = _pid(conn)
            startup = conn.execute(
                "SELECT current_setting('lock_timeout'), current_setting('search_path')"
            ).fetchone()
            assert startup is not None
            conn.execute(f"SET ROLE {probe_role}")
            conn.execute("SET statement_timeout = '7s'")
            conn.execute("SET search_path = public")
            conn.execute("CREATE TEMP TABLE planted (x int)")
            conn.execute("PREPARE planted_statement AS SELECT 1")
            conn.execute("SELECT pg_advisory_lock(4242)")
        with session(url, autocommit=True) as conn:
            assert _pid(conn) == first, "the second session is the first one, kept"
            row = conn.execute(
                "SELECT current_user, current_setting('statement_timeout'), "
                "current_setting('lock_timeout'), current_setting('search_path'), "
                "to_regclass('pg_temp.planted'), "
                "(SELECT count(*) FROM pg_prepared_statements), "
                "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid())"
            ).fetchone()
            # What the login set (the bound on lock waits, pg_catalog first) survives the
            # reset; what a step set does not.
            assert row == (postgres.admin_user, "0", *startup, None, 0, 0), row


def test_a_session_that_failed_or_was_ended_is_never_handed_out(
    postgres: PostgresServer,
) -> None:
    url = postgres.admin_url
    failed: list[int] = []

    def failing_step() -> None:
        with session(url, autocommit=True) as conn:
            failed.append(_pid(conn))
            conn.execute("SELECT 1 / 0")

    with driver.reusing(None):
        with pytest.raises(ServerError):
            failing_step()
        with session(url, autocommit=True) as conn:
            kept = _pid(conn)
        assert [kept] != failed, "a session whose step failed is closed, not kept"
        postgres.superuser_psql(f"SELECT pg_terminate_backend({kept})")
        assert not _alive(postgres, kept, want=False)
        with session(url, autocommit=True) as conn:
            replacement = _pid(conn)
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert replacement != kept, "a kept session the server ended is replaced by a new login"


def test_no_service_database_is_held_open_and_nothing_outlives_the_block(
    postgres: PostgresServer,
) -> None:
    url = postgres.admin_url
    postgres.superuser_psql(f"CREATE DATABASE {PROBE_DATABASE}")
    try:
        with driver.reusing(None):
            with session(url, PROBE_DATABASE, autocommit=True) as conn:
                elsewhere = _pid(conn)
            with session(url) as conn:  # not autocommit: a transaction's state is not reset
                in_transaction = _pid(conn)
            with session(url, autocommit=True) as conn:
                kept = _pid(conn)
            assert not _alive(postgres, elsewhere, want=False), "only listed databases are kept"
            assert not _alive(postgres, in_transaction, want=False)
            # The database the block did not list can be dropped at once (no session of ours
            # stands in the way), as restore's rename and drop need.
            postgres.superuser_psql(f"DROP DATABASE {PROBE_DATABASE}")
            assert _alive(postgres, kept, want=True)
        assert not _alive(postgres, kept, want=False), "the block closes what it kept"
    finally:
        postgres.superuser_psql(f"DROP DATABASE IF EXISTS {PROBE_DATABASE}")


def test_outside_a_block_every_session_is_a_login_of_its_own(postgres: PostgresServer) -> None:
    url = postgres.admin_url
    with session(url, autocommit=True) as conn:
        first = _pid(conn)
    with session(url, autocommit=True) as conn:
        assert _pid(conn) != first
    assert not _alive(postgres, first, want=False)


def test_a_query_repeated_in_kept_sessions_still_runs(postgres: PostgresServer) -> None:
    """psycopg prepares a query it has run five times, and it notices a DISCARD ALL (which drops
    its prepared statements on the server) only while that text is new to it: after a first
    session that prepared nothing, the third used to fail with 'prepared statement "_pg3_0"
    does not exist' (a `backup` of 12 services did)."""
    url = postgres.admin_url
    with driver.reusing(None):
        for runs in (1, 8, 8, 8):
            with session(url, autocommit=True) as conn:
                for _ in range(runs):
                    assert conn.execute("SELECT %s::int", (1,)).fetchone() == (1,)
