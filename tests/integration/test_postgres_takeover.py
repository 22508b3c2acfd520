"""Objects under our names that this tool did not make are refused; hostile drift is reverted.

Everything runs as the non-superuser admin against a real PostgreSQL 15; the damage is done as
the superuser or through the service's own logins, and results are read from the catalog.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from infra import postgres as pg_engine
from infra.config import StackConfig
from infra.credentials import Credentials
from infra.errors import PlatformError, ServerError
from infra.postgres.drop import drop_service
from tests.integration.postgres_support import login_error, service_url
from tests.servers.postgres import PostgresServer

Rendered = tuple[Path, Credentials]


def _roles(server: PostgresServer) -> str:
    return server.superuser_psql(
        "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles "
        "WHERE rolname LIKE '%\\_owner' AND rolname <> 'pg_database_owner'"
    )


def _planned(server: PostgresServer, config: StackConfig, credentials: Credentials) -> list[str]:
    return [s.text for s in pg_engine.plan(server.admin_url, config, credentials).statements]


def test_a_hand_made_login_under_our_name_stops_only_its_own_service(
    postgres: PostgresServer, dev_config: StackConfig, dev_rendered: Rendered
) -> None:
    """Runs first, on the empty server: a squatted name leaves its service alone, and only it;
    every other service is converged, and apply names the ones it left."""
    _, credentials = dev_rendered
    postgres.superuser_psql("CREATE ROLE users_app LOGIN PASSWORD 'squatter'")
    verifier = "SELECT rolpassword FROM pg_authid WHERE rolname = 'users_app'"
    before = postgres.superuser_psql(verifier)
    postgres.superuser_psql("CREATE ROLE mallory LOGIN")
    postgres.superuser_psql("CREATE DATABASE audit OWNER mallory")
    try:
        planned = pg_engine.plan(postgres.admin_url, dev_config, credentials)
        problems = {s.service: s.problems for s in planned.services if s.problems}
        assert sorted(problems) == ["audit", "users"], problems
        assert problems["users"][0].startswith("role users_app exists but was not created")
        assert problems["audit"][0].startswith("database audit exists but was not created")
        assert "drop" not in " ".join(problems["audit"]), "advice must never be to drop data"
        with pytest.raises(ServerError, match="apply failed for users, audit") as failed:
            pg_engine.apply(postgres.admin_url, dev_config, credentials)
        assert "role users_app exists but was not created" in str(failed.value)
        assert _roles(postgres) == "auth_owner,authorization_owner,events_owner", (
            "the other services were not converged"
        )
        assert postgres.superuser_psql(verifier) == before, "the squatter's password was replaced"
        assert (
            postgres.superuser_psql(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'audit'"
            )
            == "mallory"
        ), "apply took the stranger's database over"
    finally:
        postgres.superuser_psql("DROP DATABASE audit")
        postgres.superuser_psql("DROP ROLE users_app")
    pg_engine.apply(postgres.admin_url, dev_config, credentials)
    registered = postgres.superuser_psql(
        "SELECT string_agg(d.datname || ':' || r.service || ':' || r.purpose, ',' "
        "ORDER BY d.datname) FROM public.databases r JOIN pg_database d ON d.oid = r.oid",
        "persistence_tooling",
    )
    assert registered == (
        "audit:audit:live,auth:auth:live,authorization:authorization:live,"
        "events:events:live,users:users:live"
    )


def test_db_drop_refuses_a_database_it_did_not_make(
    postgres: PostgresServer, dev_config: StackConfig, dev_rendered: Rendered
) -> None:
    _, credentials = dev_rendered
    pg_engine.apply(postgres.admin_url, dev_config, credentials)
    postgres.superuser_psql("ALTER DATABASE events RENAME TO events_real")
    # Owned by the admin itself, so only the marker check can stop the admin from dropping it.
    postgres.superuser_psql("CREATE DATABASE events OWNER platform_admin")
    try:
        with pytest.raises(PlatformError, match=r"database events .* not created by this tool"):
            drop_service(postgres.admin_url, "events")
        assert (
            postgres.superuser_psql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'events\\_%'")
            == "4"
        )
    finally:
        postgres.superuser_psql("DROP DATABASE events")
        postgres.superuser_psql("ALTER DATABASE events_real RENAME TO events")


def test_a_stranger_member_of_any_service_role_is_revoked(
    postgres: PostgresServer, dev_config: StackConfig, dev_rendered: Rendered
) -> None:
    _, credentials = dev_rendered
    pg_engine.apply(postgres.admin_url, dev_config, credentials)
    postgres.superuser_psql("GRANT users_owner TO mallory; GRANT users_app TO mallory")
    planned = [
        s.text for s in pg_engine.plan(postgres.admin_url, dev_config, credentials).statements
    ]
    assert 'REVOKE "users_owner" FROM "mallory"' in planned
    assert 'REVOKE "users_app" FROM "mallory"' in planned
    pg_engine.apply(postgres.admin_url, dev_config, credentials)
    assert postgres.superuser_psql("SELECT pg_has_role('mallory', 'users_owner', 'MEMBER')") == "f"
    assert postgres.superuser_psql("SELECT pg_has_role('mallory', 'users_app', 'MEMBER')") == "f"
    assert pg_engine.apply(postgres.admin_url, dev_config, credentials).executed == ()


def test_a_password_a_login_changed_itself_is_set_back(
    postgres: PostgresServer, dev_config: StackConfig, dev_rendered: Rendered
) -> None:
    rendered, credentials = dev_rendered
    pg_engine.apply(postgres.admin_url, dev_config, credentials)
    url = service_url(rendered, postgres, "users", "app")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER ROLE users_app PASSWORD 'mine-now'")
    assert login_error(url) is not None
    planned = [
        s.text for s in pg_engine.plan(postgres.admin_url, dev_config, credentials).statements
    ]
    assert "ALTER ROLE \"users_app\" PASSWORD '[REDACTED]'" in planned
    pg_engine.apply(postgres.admin_url, dev_config, credentials)
    assert login_error(url) is None
    assert pg_engine.apply(postgres.admin_url, dev_config, credentials).executed == ()


def test_objects_a_login_owns_in_its_database_go_to_the_owner(
    postgres: PostgresServer, dev_config: StackConfig, dev_rendered: Rendered
) -> None:
    rendered, credentials = dev_rendered
    pg_engine.apply(postgres.admin_url, dev_config, credentials)
    with psycopg.connect(service_url(rendered, postgres, "users", "migrator")) as conn:
        conn.execute("SET ROLE users_migrator")  # not RESET: that is the owner
        conn.execute("CREATE TABLE mine (id int)")
    with psycopg.connect(service_url(rendered, postgres, "users", "app")) as conn:
        conn.execute("SELECT lo_create(0)")
    planned = [
        s.text for s in pg_engine.plan(postgres.admin_url, dev_config, credentials).statements
    ]
    assert 'REASSIGN OWNED BY "users_migrator" TO "users_owner"' in planned
    assert 'REASSIGN OWNED BY "users_app" TO "users_owner"' in planned
    pg_engine.apply(postgres.admin_url, dev_config, credentials)
    owners = postgres.superuser_psql(
        "SELECT string_agg(DISTINCT o::text, ',') FROM (SELECT relowner::regrole AS o FROM pg_class"
        " WHERE relname = 'mine' UNION SELECT lomowner::regrole FROM pg_largeobject_metadata) x",
        "users",
    )
    assert owners == "users_owner"
    assert (
        postgres.superuser_psql("SELECT pg_has_role('platform_admin', 'users_app', 'MEMBER')")
        == "f"
    ), "the admin kept the membership it borrowed for REASSIGN OWNED"
    assert pg_engine.apply(postgres.admin_url, dev_config, credentials).executed == ()


def test_a_second_apply_waits_for_the_first(
    postgres: PostgresServer, dev_config: StackConfig, dev_rendered: Rendered
) -> None:
    _, credentials = dev_rendered
    pg_engine.apply(postgres.admin_url, dev_config, credentials)
    postgres.superuser_psql("ALTER ROLE auth_app CONNECTION LIMIT 99")
    entered = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def slow(_: object) -> None:
        entered.set()
        release.wait(10)

    def first() -> None:
        try:
            pg_engine.apply(postgres.admin_url, dev_config, credentials, on_statement=slow)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=first)
    thread.start()
    assert entered.wait(10)
    result: list[tuple[str, ...]] = []
    second = threading.Thread(
        target=lambda: result.append(
            pg_engine.apply(postgres.admin_url, dev_config, credentials).executed
        )
    )
    second.start()
    time.sleep(1.5)
    assert result == [], "the second apply ran while the first held the lock"
    release.set()
    thread.join(20)
    second.join(20)
    assert errors == []
    assert result == [()]
