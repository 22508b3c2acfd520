"""A hostile service login plants code for the tooling to run; the admin must never run it.

The migrator of ``events`` (a real login, as a compromised service would have) plants a function
that tries to escalate whoever runs it: it first escapes any ``SET ROLE`` (``RESET ROLE``), then
gives the migrator CREATEROLE, another service's owner role and pg_signal_backend. It is wired to
every route the tooling could execute it by:

- a CHECK constraint (runs on every row ``pg_restore`` copies in);
- a materialized view (``pg_restore`` refreshes it as the view's owner);
- a row-level security policy (runs for any non-owner that reads the table, e.g. row counts);
- an ``=(oid, integer)`` operator in ``public`` (shadows pg_catalog's for a catalog read that
  compares ``oid = 0`` under a default ``search_path``).

After each of ``db plan``, ``db apply``, ``backup``, ``verify`` and ``restore`` as the
non-superuser admin, the migrator has gained nothing: checked in the catalog as the superuser and
through the migrator's own login.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from infra.config import StackConfig
from infra.credentials import Credentials
from infra.postgres import apply, plan
from tests.integration.backup_helpers import (
    cli,
    cli_options,
    login_url,
)
from tests.integration.postgres_support import catalog
from tests.servers.postgres import PostgresServer

SERVICE = "events"
MIGRATOR = "events_migrator"

PLANT_SQL = """
CREATE FUNCTION plant(i int) RETURNS int LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  BEGIN RESET ROLE; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE 'ALTER ROLE events_migrator CREATEROLE'; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE 'GRANT auth_owner TO events_migrator'; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE 'GRANT pg_signal_backend TO events_migrator';
  EXCEPTION WHEN OTHERS THEN NULL; END;
  RETURN i;
END $$;
CREATE TABLE checked (i int CHECK (plant(i) = i));
INSERT INTO checked SELECT generate_series(1, 3);
CREATE MATERIALIZED VIEW refreshed AS SELECT plant(1) AS i;
CREATE TABLE guarded (i int);
INSERT INTO guarded VALUES (1), (2);
ALTER TABLE guarded ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone ON guarded USING (plant(i) = i);
CREATE FUNCTION oid_eq_int(oid, integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM plant(0);
  RETURN $1 = $2::oid;
END $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = integer, FUNCTION = oid_eq_int);
"""


@pytest.fixture(scope="module")
def planted(
    postgres: PostgresServer, dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> tuple[PostgresServer, Credentials, list[str]]:
    rendered, credentials = dev_rendered
    apply(postgres.admin_url, dev_config, credentials)
    with psycopg.connect(login_url(postgres, credentials, SERVICE, "migrator")) as conn:
        conn.execute(PLANT_SQL)
    common = cli_options(postgres, rendered, dev_config.postgres.admin_user)
    return postgres, credentials, common


def gained(server: PostgresServer, credentials: Credentials) -> list[str]:
    """Everything the migrator holds beyond the role model, from the catalog and its login."""
    found = []
    attrs = catalog(
        server, "SELECT rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = {m}", m=MIGRATOR
    )
    if attrs != "f|f":
        found.append(f"attributes (createrole|createdb) = {attrs}")
    groups = catalog(
        server,
        "SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members a "
        "JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member "
        "WHERE m.rolname = {m}",
        m=MIGRATOR,
    )
    if groups != "events_owner":
        found.append(f"member of {groups}")
    with psycopg.connect(
        login_url(server, credentials, SERVICE, "migrator"), autocommit=True
    ) as conn:
        try:
            conn.execute("SET ROLE auth_owner")
            found.append("the migrator's login can SET ROLE auth_owner")
        except psycopg.errors.InsufficientPrivilege:
            pass
    return found


@pytest.fixture
def clean(planted: tuple[PostgresServer, Credentials, list[str]]) -> Iterator[None]:
    """Undo any escalation a failing run caused, so each route is tested on its own."""
    server, _, _ = planted
    yield
    server.superuser_psql(
        f"ALTER ROLE {MIGRATOR} NOCREATEROLE; REVOKE auth_owner FROM {MIGRATOR}; "
        f"REVOKE pg_signal_backend FROM {MIGRATOR}"
    )


def test_plan_and_apply_run_no_planted_operator_as_the_admin(
    planted: tuple[PostgresServer, Credentials, list[str]],
    dev_config: StackConfig,
    clean: None,
) -> None:
    server, credentials, _ = planted
    plan(server.admin_url, dev_config, credentials, services=[SERVICE])
    apply(server.admin_url, dev_config, credentials, services=[SERVICE])
    assert gained(server, credentials) == []


def test_backup_runs_no_planted_policy_as_the_admin(
    planted: tuple[PostgresServer, Credentials, list[str]], tmp_path: Path, clean: None
) -> None:
    server, credentials, common = planted
    bucket = f"file://{tmp_path / 'bucket'}"
    code, _, err = cli("backup", *common, "--bucket", bucket, "--service", SERVICE)
    assert gained(server, credentials) == []
    assert code == 0, err


def test_verify_and_restore_run_no_planted_code_as_the_admin(
    planted: tuple[PostgresServer, Credentials, list[str]], tmp_path: Path, clean: None
) -> None:
    server, credentials, common = planted
    bucket = f"file://{tmp_path / 'bucket'}"
    server.superuser_psql("ALTER TABLE guarded DISABLE ROW LEVEL SECURITY", SERVICE)
    code, _, err = cli("backup", *common, "--bucket", bucket, "--service", SERVICE)
    server.superuser_psql("ALTER TABLE guarded ENABLE ROW LEVEL SECURITY", SERVICE)
    assert code == 0, err
    code, out, err = cli("verify", *common, "--bucket", bucket, "--service", SERVICE)
    assert gained(server, credentials) == []
    assert code == 0, out + err
    code, out, err = cli("restore", *common, "--bucket", bucket, "--service", SERVICE)
    assert gained(server, credentials) == []
    assert code == 0, out + err
