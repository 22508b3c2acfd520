"""The role model on a real PostgreSQL 15, provisioned by the NON-superuser admin.

Everything is checked through the superuser's view of the catalog and through real logins with
the URLs from the rendered ``services/<svc>.env`` files, never through the engine's own output.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import psycopg
import pytest

from infra import naming
from infra import postgres as pg_engine
from infra.config import StackConfig
from infra.credentials import Credentials
from infra.postgres.engine import ApplyReport
from tests.integration.postgres_support import (
    all_roles,
    assert_extensions,
    assert_no_create_or_temp,
    assert_owned_by_its_owner,
    assert_public_has_nothing,
    catalog,
    login_error,
    service_url,
)
from tests.servers.postgres import PostgresServer

Rendered = tuple[Path, Credentials]


@pytest.fixture(scope="module")
def applied(
    postgres: PostgresServer, dev_config: StackConfig, dev_rendered: Rendered
) -> ApplyReport:
    _, credentials = dev_rendered
    return pg_engine.apply(postgres.admin_url, dev_config, credentials)


@pytest.fixture(scope="module")
def names(dev_config: StackConfig) -> list[str]:
    return [spec.name for spec in dev_config.services]


def test_the_engine_runs_as_a_non_superuser_admin(
    postgres: PostgresServer, dev_config: StackConfig, applied: ApplyReport
) -> None:
    admin = dev_config.postgres.admin_user
    row = catalog(
        postgres,
        "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = {admin}",
        admin=admin,
    )
    assert row == "f|t|t", f"admin {admin} must be LOGIN CREATEROLE CREATEDB and not superuser"
    assert len(applied.executed) > 0


def test_each_service_owns_its_database(
    postgres: PostgresServer, names: list[str], applied: ApplyReport
) -> None:
    for service in names:
        assert_owned_by_its_owner(postgres, service)


def test_no_service_role_has_a_forbidden_attribute(
    postgres: PostgresServer, names: list[str], applied: ApplyReport
) -> None:
    roles = all_roles(names)
    rows = catalog(
        postgres,
        "SELECT rolname FROM pg_roles WHERE rolname = ANY({roles}) AND (rolsuper OR "
        "rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)",
        roles=roles,
    )
    assert rows == ""
    count = catalog(postgres, "SELECT count(*) FROM pg_roles WHERE rolname = ANY({r})", r=roles)
    assert int(count) == 4 * len(names)
    logins = catalog(
        postgres,
        "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles "
        "WHERE rolname = ANY({roles}) AND NOT rolcanlogin",
        roles=roles,
    )
    assert logins == ",".join(sorted(naming.role_name(s, "owner") for s in names))


def test_public_has_no_connect_or_temp_on_service_databases(
    postgres: PostgresServer, names: list[str], applied: ApplyReport
) -> None:
    for service in names:
        assert_public_has_nothing(postgres, service)


def test_logins_of_one_service_cannot_connect_to_another_services_database(
    postgres: PostgresServer, dev_rendered: Rendered, names: list[str], applied: ApplyReport
) -> None:
    rendered, _ = dev_rendered
    for owner, other in itertools.permutations(names, 2):
        for kind in naming.LOGIN_SUFFIXES:
            role = naming.role_name(owner, kind)
            url = service_url(rendered, postgres, owner, kind, database=other)
            assert login_error(url) is not None, f"{role} connected to database {other}"
    # Not only pg_hba.conf: the catalog itself refuses CONNECT (and TEMPORARY) across services.
    crossing = catalog(
        postgres,
        "SELECT string_agg(r.rolname || '->' || d.datname, ',') FROM pg_roles r, pg_database d "
        "WHERE r.rolname = ANY({roles}) AND d.datname = ANY({databases}) "
        "AND d.datname <> regexp_replace(r.rolname, '_(owner|migrator|app|readonly)$', '') "
        "AND (has_database_privilege(r.oid, d.oid, 'CONNECT') "
        "OR has_database_privilege(r.oid, d.oid, 'TEMPORARY'))",
        roles=all_roles(names),
        databases=names,
    )
    assert crossing == "", f"roles with CONNECT/TEMPORARY on another service's database: {crossing}"
    for service in names:
        for kind in naming.LOGIN_SUFFIXES:
            assert login_error(service_url(rendered, postgres, service, kind)) is None


def test_connection_limits_and_timeouts_follow_the_config(
    postgres: PostgresServer, dev_config: StackConfig, applied: ApplyReport
) -> None:
    for spec in dev_config.services:
        for kind in naming.LOGIN_SUFFIXES:
            role = naming.role_name(spec.name, kind)
            limit = catalog(
                postgres, "SELECT rolconnlimit FROM pg_roles WHERE rolname = {role}", role=role
            )
            assert int(limit) == getattr(spec.connection_limits, kind), role
            config = catalog(
                postgres,
                "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting "
                "WHERE setrole = {role}::regrole AND setdatabase = 0",
                role=role,
            )
            timeout = (
                spec.migrator_statement_timeout_ms
                if kind == "migrator"
                else spec.statement_timeout_ms
            )
            assert f"statement_timeout={timeout}" in config.split(","), role
            idle = spec.idle_in_transaction_session_timeout_ms
            assert f"idle_in_transaction_session_timeout={idle}" in config.split(","), role


def test_requested_extensions_exist(
    postgres: PostgresServer, dev_config: StackConfig, applied: ApplyReport
) -> None:
    for spec in dev_config.services:
        assert_extensions(postgres, spec.name, spec.extensions)


def test_app_and_readonly_have_no_create_on_any_schema(
    postgres: PostgresServer, names: list[str], applied: ApplyReport
) -> None:
    for service in names:
        assert_no_create_or_temp(postgres, service)


MIGRATION = """
CREATE TABLE orders (id bigserial PRIMARY KEY, note text NOT NULL);
CREATE SEQUENCE invoice_numbers;
CREATE FUNCTION order_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM orders';
"""


def test_objects_created_by_the_migrator_are_usable_by_app_and_readable_by_readonly(
    postgres: PostgresServer, dev_rendered: Rendered, applied: ApplyReport
) -> None:
    rendered, _ = dev_rendered
    service = "users"
    with psycopg.connect(service_url(rendered, postgres, service, "migrator")) as conn:
        conn.execute(MIGRATION)
    owners = postgres.superuser_psql(
        "SELECT string_agg(DISTINCT pg_get_userbyid(relowner), ',') FROM pg_class "
        "WHERE relname IN ('orders', 'orders_id_seq', 'invoice_numbers')",
        service,
    )
    assert owners == naming.role_name(service, "owner")

    with psycopg.connect(service_url(rendered, postgres, service, "app")) as conn:
        conn.execute("INSERT INTO orders (note) VALUES ('first'), ('second')")
        conn.execute("UPDATE orders SET note = 'changed' WHERE note = 'first'")
        conn.execute("DELETE FROM orders WHERE note = 'second'")
        assert conn.execute("SELECT note FROM orders").fetchall() == [("changed",)]
        assert conn.execute("SELECT nextval('invoice_numbers')").fetchone() == (1,)
        assert conn.execute("SELECT order_count()").fetchone() == (1,)

    with psycopg.connect(service_url(rendered, postgres, service, "readonly")) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1,)

    forbidden_for_app = [
        "CREATE TABLE sneaky (id int)",
        "ALTER TABLE orders ADD COLUMN extra int",
        "DROP TABLE orders",
        "TRUNCATE orders",
        "CREATE SCHEMA sneaky",
        "CREATE TEMPORARY TABLE sneaky (id int)",
        "CREATE ROLE sneaky",
        "CREATE DATABASE sneaky",
        "SET ROLE users_owner",
    ]
    forbidden_for_readonly = [
        "INSERT INTO orders (note) VALUES ('x')",
        "UPDATE orders SET note = 'x'",
        "DELETE FROM orders",
        "TRUNCATE orders",
        "SELECT nextval('invoice_numbers')",
        "CREATE TABLE sneaky (id int)",
    ]
    for kind, statements in (("app", forbidden_for_app), ("readonly", forbidden_for_readonly)):
        url = service_url(rendered, postgres, service, kind)
        for statement in statements:
            with psycopg.connect(url) as conn:
                try:
                    conn.execute(statement)
                except psycopg.errors.Error:
                    continue
                pytest.fail(f"{kind} could run: {statement}")
    count = postgres.superuser_psql("SELECT count(*) FROM orders", service)
    assert count == "1"


def test_a_second_apply_executes_nothing(
    postgres: PostgresServer,
    dev_config: StackConfig,
    dev_rendered: Rendered,
    applied: ApplyReport,
) -> None:
    _, credentials = dev_rendered
    again = pg_engine.apply(postgres.admin_url, dev_config, credentials)
    assert again.executed == ()
    assert pg_engine.plan(postgres.admin_url, dev_config, credentials).statements == ()


def test_no_plaintext_password_reaches_the_server_log(
    postgres: PostgresServer, dev_rendered: Rendered, applied: ApplyReport
) -> None:
    _, credentials = dev_rendered
    log = postgres.log_text()
    assert "CREATE ROLE" in log, "the server must log statements for this test to mean anything"
    for service, passwords in credentials.services.items():
        for kind in naming.LOGIN_SUFFIXES:
            assert passwords.postgres_password(kind) not in log, f"{service} {kind} password"
    assert credentials.postgres_admin not in log


def test_rotation_refuses_the_old_password(
    postgres: PostgresServer,
    dev_config: StackConfig,
    dev_rendered: Rendered,
    applied: ApplyReport,
    tmp_path: Path,
) -> None:
    rendered, credentials = dev_rendered
    rotated = credentials.rotated("auth")
    report = pg_engine.apply(postgres.admin_url, dev_config, rotated)
    assert report.changed == ("auth",)
    assert all("[REDACTED]" in line for line in report.executed if "PASSWORD" in line)
    old_url = service_url(rendered, postgres, "auth", "app")
    assert login_error(old_url) is not None, "the old app password still logs in"
    new = rotated.for_service("auth")
    new_url = postgres.url("auth_app", new.app, "auth")
    assert login_error(new_url) is None
    log = postgres.log_text()
    for kind in naming.LOGIN_SUFFIXES:
        assert new.postgres_password(kind) not in log
    assert pg_engine.apply(postgres.admin_url, dev_config, rotated).executed == ()
