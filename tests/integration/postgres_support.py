"""Helpers for the PostgreSQL provisioning tests: service URLs from the rendered env files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from infra import naming
from tests.servers.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[2]


def cli(
    *args: str, env: dict[str, str] | None = None, unset: Iterable[str] = ()
) -> subprocess.CompletedProcess[str]:
    """``python -m infra ARGS`` as a user runs it, without PGPASSWORD or the ``unset`` names
    from the test's environment (so only what the test passes reaches the command)."""
    dropped = {"PGPASSWORD", *unset}
    environment = {k: v for k, v in os.environ.items() if k not in dropped}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "infra", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


URL_KEYS = {
    "app": "DATABASE_URL",
    "migrator": "MIGRATION_DATABASE_URL",
    "readonly": "READONLY_DATABASE_URL",
}


def env_file(rendered: Path, service: str) -> dict[str, str]:
    """``services/<service>.env`` as a dict (the file a service actually receives)."""
    values = {}
    for line in (rendered / "services" / f"{service}.env").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
    return values


def service_url(
    rendered: Path, server: PostgresServer, service: str, kind: str, database: str | None = None
) -> str:
    """The rendered URL of one login, pointed at the test server (and optionally another db).

    Straight to PostgreSQL, so the read-only URL's pooler name for the replicas
    (``<service>__replicas``, when the stack has replicas) becomes the database it names."""
    parts = urlsplit(env_file(rendered, service)[URL_KEYS[kind]])
    netloc = f"{parts.netloc.rsplit('@', 1)[0]}@{server.host}:{server.port}"
    path = parts.path.removesuffix(naming.REPLICAS_ALIAS_SUFFIX)
    path = f"/{database}" if database is not None else path
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def login_error(url: str) -> str | None:
    """None if a real login to ``url`` works, else the server's reason."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as error:
        return str(error)
    return None


def all_roles(services: list[str]) -> list[str]:
    return [naming.role_name(s, kind) for s in services for kind in naming.ROLE_SUFFIXES]


def catalog(
    server: PostgresServer, query: str, database: str = "postgres", **values: object
) -> str:
    """Run a superuser query whose ``{name}`` placeholders are bound as SQL literals."""
    composed = sql.SQL(query).format(**{k: sql.Literal(v) for k, v in values.items()})
    return server.superuser_psql(composed.as_string(), database)


# The role model's per-service catalog checks, shared by the roles tests and the checks run
# after a restore, so "every isolation check still passes" means the very same checks.


def assert_owned_by_its_owner(server: PostgresServer, service: str) -> None:
    """The service's database belongs to ``<service>_owner``."""
    owner = catalog(
        server,
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = {db}",
        db=naming.database_name(service),
    )
    assert owner == naming.role_name(service, "owner"), f"{service} is owned by {owner}"


def assert_public_has_nothing(server: PostgresServer, service: str) -> None:
    """PUBLIC holds no privilege (CONNECT, TEMP) on the service's database."""
    database = naming.database_name(service)
    public = catalog(
        server,
        "SELECT count(*) FROM pg_database d, aclexplode(coalesce(d.datacl, "
        "acldefault('d', d.datdba))) a WHERE d.datname = {db} AND a.grantee = 0",
        db=database,
    )
    assert public == "0", f"PUBLIC still has privileges on database {database}"


def assert_no_create_or_temp(server: PostgresServer, service: str) -> None:
    """The app and readonly logins can create nothing: no schema CREATE, no TEMP."""
    database = naming.database_name(service)
    for kind in ("app", "readonly"):
        role = naming.role_name(service, kind)
        schemas = catalog(
            server,
            "SELECT string_agg(nspname, ',') FROM pg_namespace "
            "WHERE has_schema_privilege({role}, oid, 'CREATE')",
            database,
            role=role,
        )
        assert schemas == "", f"{role} may CREATE in {schemas}"
        temp = catalog(
            server,
            "SELECT has_database_privilege({role}, {db}, 'TEMPORARY')",
            role=role,
            db=database,
        )
        assert temp == "f", f"{role} may create temporary tables in {database}"


def assert_extensions(server: PostgresServer, service: str, extensions: tuple[str, ...]) -> None:
    """Every extension the service asked for exists in its database."""
    database = naming.database_name(service)
    found = set(server.superuser_psql("SELECT extname FROM pg_extension", database).split())
    missing = set(extensions) - found
    assert not missing, f"extensions {sorted(missing)} missing from {database}"
