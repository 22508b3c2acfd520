"""Drift made by hand (as the superuser) is reported by ``plan`` and reverted by ``apply``.

The engine runs as the non-superuser admin; results are checked in the catalog as superuser.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import pytest

from infra import postgres as pg_engine
from infra.config import StackConfig
from infra.credentials import Credentials
from infra.errors import ServerError
from infra.postgres.drop import drop_service
from tests.integration.postgres_support import login_error, service_url
from tests.servers.postgres import PostgresServer

Rendered = tuple[Path, Credentials]


@pytest.fixture(scope="module")
def converged(
    postgres: PostgresServer, dev_config: StackConfig, dev_rendered: Rendered
) -> PostgresServer:
    rendered, credentials = dev_rendered
    pg_engine.apply(postgres.admin_url, dev_config, credentials)
    with psycopg.connect(service_url(rendered, postgres, "audit", "migrator")) as conn:
        conn.execute("CREATE TABLE entries (id bigserial PRIMARY KEY, body text)")
    return postgres


@dataclass(frozen=True)
class Drift:
    """A hand-made change, the statement plan must show, and a catalog check of the repair."""

    name: str
    damage: str
    expected: str
    check: str  # superuser query in database 'audit' that returns 't' once repaired
    database: str = "audit"


DRIFTS = [
    Drift(
        "grant all on a table to the app role",
        "GRANT ALL ON TABLE entries TO audit_app",
        'REVOKE REFERENCES, TRIGGER, TRUNCATE ON TABLE "public"."entries" FROM "audit_app"',
        "SELECT NOT has_table_privilege('audit_app', 'entries', 'TRUNCATE') "
        "AND has_table_privilege('audit_app', 'entries', 'INSERT')",
    ),
    Drift(
        "table privilege revoked from readonly",
        "REVOKE SELECT ON TABLE entries FROM audit_readonly",
        'GRANT SELECT ON TABLE "public"."entries" TO "audit_readonly"',
        "SELECT has_table_privilege('audit_readonly', 'entries', 'SELECT')",
    ),
    Drift(
        "connection limit changed",
        "ALTER ROLE audit_app CONNECTION LIMIT 99",
        'ALTER ROLE "audit_app" WITH CONNECTION LIMIT 10',
        "SELECT rolconnlimit = 10 FROM pg_roles WHERE rolname = 'audit_app'",
    ),
    Drift(
        "default privilege missing",
        "ALTER DEFAULT PRIVILEGES FOR ROLE audit_owner REVOKE SELECT ON TABLES FROM audit_readonly",
        'ALTER DEFAULT PRIVILEGES FOR ROLE "audit_owner" GRANT SELECT ON TABLES TO '
        '"audit_readonly"',
        "SELECT count(*) = 1 FROM pg_default_acl d, aclexplode(d.defaclacl) a "
        "WHERE d.defaclobjtype = 'r' AND a.grantee = 'audit_readonly'::regrole",
    ),
    Drift(
        "extra default privilege",
        "ALTER DEFAULT PRIVILEGES FOR ROLE audit_owner GRANT TRUNCATE ON TABLES TO audit_app",
        'ALTER DEFAULT PRIVILEGES FOR ROLE "audit_owner" REVOKE TRUNCATE ON TABLES FROM '
        '"audit_app"',
        "SELECT count(*) = 0 FROM pg_default_acl d, aclexplode(d.defaclacl) a "
        "WHERE a.grantee = 'audit_app'::regrole AND a.privilege_type = 'TRUNCATE'",
    ),
    Drift(
        "CREATEDB added by hand",
        "ALTER ROLE audit_app CREATEDB CREATEROLE",
        'ALTER ROLE "audit_app" WITH NOCREATEDB NOCREATEROLE',
        "SELECT NOT rolcreatedb AND NOT rolcreaterole FROM pg_roles WHERE rolname = 'audit_app'",
    ),
    Drift(
        "PUBLIC may connect again",
        "GRANT CONNECT, TEMPORARY ON DATABASE audit TO PUBLIC",
        'REVOKE CONNECT, TEMPORARY ON DATABASE "audit" FROM PUBLIC',
        "SELECT count(*) = 0 FROM pg_database d, aclexplode(d.datacl) a "
        "WHERE d.datname = 'audit' AND a.grantee = 0",
    ),
    Drift(
        "another service's login may connect",
        "GRANT CONNECT ON DATABASE audit TO events_app",
        'REVOKE CONNECT ON DATABASE "audit" FROM "events_app"',
        "SELECT NOT has_database_privilege('events_app', 'audit', 'CONNECT')",
    ),
    Drift(
        "app made a member of the owner role",
        "GRANT audit_owner TO audit_app",
        'REVOKE "audit_owner" FROM "audit_app"',
        "SELECT NOT pg_has_role('audit_app', 'audit_owner', 'MEMBER')",
    ),
    Drift(
        "CREATE on the public schema",
        "GRANT CREATE ON SCHEMA public TO audit_app, PUBLIC",
        'REVOKE CREATE ON SCHEMA "public" FROM "audit_app"',
        "SELECT NOT has_schema_privilege('audit_app', 'public', 'CREATE') "
        "AND NOT has_schema_privilege('audit_readonly', 'public', 'CREATE')",
    ),
    Drift(
        "migrator no longer acts as the owner",
        "ALTER ROLE audit_migrator IN DATABASE audit RESET role",
        'ALTER ROLE "audit_migrator" IN DATABASE "audit" SET "role" = \'audit_owner\'',
        "SELECT count(*) = 1 FROM pg_db_role_setting WHERE setrole = 'audit_migrator'::regrole "
        "AND 'role=audit_owner' = ANY(setconfig)",
    ),
    Drift(
        "statement timeout changed",
        "ALTER ROLE audit_readonly SET statement_timeout = 0",
        'ALTER ROLE "audit_readonly" SET "statement_timeout" = \'30000\'',
        "SELECT 'statement_timeout=30000' = ANY(setconfig) FROM pg_db_role_setting "
        "WHERE setrole = 'audit_readonly'::regrole AND setdatabase = 0",
    ),
    Drift(
        "admin lost its membership in the owner role",
        "REVOKE audit_owner FROM platform_admin",
        'GRANT "audit_owner" TO "platform_admin"',
        "SELECT pg_has_role('platform_admin', 'audit_owner', 'MEMBER')",
    ),
    Drift(
        "another service's login made a member of the owner role",
        "GRANT audit_owner TO events_migrator",
        'REVOKE "audit_owner" FROM "events_migrator"',
        "SELECT NOT pg_has_role('events_migrator', 'audit_owner', 'MEMBER')",
    ),
    Drift(
        "a role setting added by hand",
        "ALTER ROLE audit_app SET role = 'audit_owner'",
        'ALTER ROLE "audit_app" RESET "role"',
        "SELECT NOT EXISTS (SELECT 1 FROM pg_db_role_setting WHERE setrole = "
        "'audit_app'::regrole AND 'role=audit_owner' = ANY(setconfig))",
    ),
    Drift(
        "a role setting added by hand inside the database",
        "ALTER ROLE audit_readonly IN DATABASE audit SET search_path = 'evil'",
        'ALTER ROLE "audit_readonly" IN DATABASE "audit" RESET "search_path"',
        "SELECT NOT EXISTS (SELECT 1 FROM pg_db_role_setting WHERE setrole = "
        "'audit_readonly'::regrole AND setdatabase <> 0)",
    ),
    Drift(
        "a database setting added by the owner",
        "ALTER DATABASE audit SET search_path = 'evil, public'",
        'ALTER DATABASE "audit" RESET ALL',
        "SELECT NOT EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_database d "
        "ON d.oid = s.setdatabase WHERE d.datname = 'audit' AND s.setrole = 0)",
    ),
    Drift(
        "a database connection limit",
        "ALTER DATABASE audit CONNECTION LIMIT 1",
        'ALTER DATABASE "audit" WITH CONNECTION LIMIT -1',
        "SELECT datconnlimit = -1 FROM pg_database WHERE datname = 'audit'",
    ),
    Drift(
        "the database left refusing connections",
        "ALTER DATABASE audit ALLOW_CONNECTIONS false",
        'ALTER DATABASE "audit" WITH ALLOW_CONNECTIONS true',
        "SELECT datallowconn FROM pg_database WHERE datname = 'audit'",
        database="postgres",
    ),
]


@pytest.mark.parametrize("drift", DRIFTS, ids=[d.name for d in DRIFTS])
def test_drift_is_reported_and_repaired(
    converged: PostgresServer, dev_config: StackConfig, dev_rendered: Rendered, drift: Drift
) -> None:
    _, credentials = dev_rendered
    converged.superuser_psql(drift.damage, drift.database)
    planned = [
        s.text for s in pg_engine.plan(converged.admin_url, dev_config, credentials).statements
    ]
    assert drift.expected in planned, f"plan missed {drift.name}: {planned}"
    report = pg_engine.apply(converged.admin_url, dev_config, credentials)
    assert drift.expected in report.executed
    assert report.changed == ("audit",)
    assert converged.superuser_psql(drift.check, drift.database) == "t", drift.name
    assert pg_engine.apply(converged.admin_url, dev_config, credentials).executed == ()


def test_an_attribute_only_a_superuser_can_remove_is_reported_not_hidden(
    converged: PostgresServer, dev_config: StackConfig, dev_rendered: Rendered
) -> None:
    _, credentials = dev_rendered
    converged.superuser_psql("ALTER ROLE audit_readonly BYPASSRLS")
    converged.superuser_psql("ALTER ROLE events_app CONNECTION LIMIT 77")
    try:
        planned = pg_engine.plan(converged.admin_url, dev_config, credentials)
        assert any("BYPASSRLS" in problem for problem in planned.problems)
        with pytest.raises(ServerError, match="audit_readonly has BYPASSRLS"):
            pg_engine.apply(converged.admin_url, dev_config, credentials)
        # The other services were still converged.
        limit = converged.superuser_psql(
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'events_app'"
        )
        assert limit == "20"
    finally:
        converged.superuser_psql("ALTER ROLE audit_readonly NOBYPASSRLS")
    assert pg_engine.apply(converged.admin_url, dev_config, credentials).executed == ()


def test_a_removed_service_is_kept_until_dropped_explicitly(
    converged: PostgresServer, dev_config: StackConfig, dev_rendered: Rendered
) -> None:
    rendered, credentials = dev_rendered
    without = replace(
        dev_config, services=tuple(spec for spec in dev_config.services if spec.name != "events")
    )
    planned = pg_engine.plan(converged.admin_url, without, credentials)
    assert planned.unmanaged == ("events",)
    assert pg_engine.apply(converged.admin_url, without, credentials).executed == ()
    assert login_error(service_url(rendered, converged, "events", "app")) is None

    executed = drop_service(converged.admin_url, "events")
    assert executed[0] == 'DROP DATABASE IF EXISTS "events" WITH (FORCE)'
    assert (
        converged.superuser_psql("SELECT count(*) FROM pg_database WHERE datname = 'events'") == "0"
    )
    assert (
        converged.superuser_psql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'events\\_%'")
        == "0"
    )
    assert pg_engine.plan(converged.admin_url, without, credentials).unmanaged == ()
    # Re-adding it provisions it again from scratch.
    report = pg_engine.apply(converged.admin_url, dev_config, credentials)
    assert report.changed == ("events",)
    assert login_error(service_url(rendered, converged, "events", "app")) is None
