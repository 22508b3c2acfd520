"""Shared helpers for the backup integration tests: seed data, fingerprints, the CLI."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pika
import psycopg

from infra import naming
from infra.cli import main
from infra.config import StackConfig
from infra.credentials import Credentials
from infra.postgres import apply
from tests.integration.postgres_support import (
    assert_extensions,
    assert_no_create_or_temp,
    assert_owned_by_its_owner,
    assert_public_has_nothing,
)
from tests.servers.postgres import PostgresServer
from tests.servers.rabbitmq import RabbitmqServer

SEED_SQL = """
CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE,
                       created timestamptz NOT NULL DEFAULT now());
CREATE TABLE orders (id serial PRIMARY KEY, account_id bigint REFERENCES accounts(id),
                     amount numeric(12, 2), payload jsonb);
CREATE TABLE documents (id int PRIMARY KEY, body oid);
CREATE SEQUENCE invoice_numbers START 1000;
INSERT INTO accounts (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 200) g;
INSERT INTO orders (account_id, amount, payload)
    SELECT 1 + g % 200, g * 1.25, jsonb_build_object('n', g) FROM generate_series(1, 500) g;
SELECT nextval('invoice_numbers') FROM generate_series(1, 7);
INSERT INTO documents
    SELECT g, lo_from_bytea(0, convert_to(repeat('large object ' || g, 400), 'UTF8'))
    FROM generate_series(1, 3) g;
"""

FINGERPRINT_SQL = """
SELECT concat_ws(' | ',
  (SELECT md5(string_agg(a::text, ',' ORDER BY id)) FROM accounts a),
  (SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o),
  (SELECT md5(string_agg(d::text, ',' ORDER BY id)) FROM documents d),
  (SELECT last_value::text FROM invoice_numbers),
  (SELECT last_value::text FROM accounts_id_seq),
  (SELECT string_agg(md5(lo_get(oid)), ',' ORDER BY oid) FROM pg_largeobject_metadata))
"""


def login_url(
    server: PostgresServer,
    credentials: Credentials,
    service: str,
    kind: str,
    database: str | None = None,
) -> str:
    password = credentials.for_service(service).postgres_password(kind)
    return server.url(
        naming.role_name(service, kind), password, database or naming.database_name(service)
    )


def seed(
    server: PostgresServer, credentials: Credentials, service: str, sql: str = SEED_SQL
) -> None:
    """Create schema and data through the migration login, as a service would."""
    with psycopg.connect(
        login_url(server, credentials, service, "migrator"), autocommit=True
    ) as conn:
        conn.execute(sql)


def fingerprint(server: PostgresServer, database: str) -> str:
    """The data, sequences and large objects, read by the superuser from the catalog."""
    return server.superuser_psql(FINGERPRINT_SQL, database)


def databases(server: PostgresServer) -> set[str]:
    return set(server.superuser_psql("SELECT datname FROM pg_database").split())


def admin_url_without_password(server: PostgresServer, user: str) -> str:
    """The CLI fills the password in from the secrets file: nothing secret on argv."""
    return f"postgresql://{user}@{server.host}:{server.port}/postgres"


def cli(*argv: str) -> tuple[int, str, str]:
    """Run ``python -m infra`` in-process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def secrets_path(rendered: Path) -> Path:
    """Where the dev_rendered fixture keeps the generated credentials."""
    return rendered.parent / "dev.secrets.json"


def assert_role_model(
    server: PostgresServer,
    service: str,
    admin_url: str,
    config: StackConfig,
    credentials: Credentials,
) -> None:
    """The roles issue's catalog checks on a restored database, read as the superuser.

    The strongest one: converging again executes nothing, so the restored database is exactly
    what the role model asks for, whatever the dump contained.
    """
    database = naming.database_name(service)
    assert_owned_by_its_owner(server, service)
    assert_public_has_nothing(server, service)
    assert_no_create_or_temp(server, service)
    owners = server.superuser_psql(
        "SELECT string_agg(DISTINCT c.relowner::regrole::text, ',') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
        database,
    )
    assert owners in ("", naming.role_name(service, "owner")), owners
    assert_extensions(server, service, config.service(service).extensions)
    report = apply(admin_url, config, credentials, services=[service])
    assert report.executed == (), f"restored {database} drifted: {report.executed}"


def cli_options(postgres: PostgresServer, rendered: Path, admin_user: str) -> list[str]:
    """The backup and db commands' stack, secrets and admin options for the dev stack."""
    return [
        "--stack",
        "dev",
        "--secrets",
        str(secrets_path(rendered)),
        "--admin-url",
        admin_url_without_password(postgres, admin_user),
    ]


def amqp(server: RabbitmqServer, credentials: Credentials, service: str) -> pika.BlockingConnection:
    """An AMQP connection to ``service``'s vhost through its own login."""
    params = pika.ConnectionParameters(
        host="127.0.0.1",
        port=server.amqp_port,
        virtual_host=service,
        credentials=pika.PlainCredentials(service, credentials.for_service(service).rabbitmq),
        connection_attempts=1,
    )
    return pika.BlockingConnection(params)
