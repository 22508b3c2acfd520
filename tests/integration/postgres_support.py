"""Helpers for the PostgreSQL provisioning tests: service URLs from the rendered env files."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from infra import naming
from tests.servers.postgres import PostgresServer

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
    """The rendered URL of one login, pointed at the test server (and optionally another db)."""
    parts = urlsplit(env_file(rendered, service)[URL_KEYS[kind]])
    netloc = f"{parts.netloc.rsplit('@', 1)[0]}@{server.host}:{server.port}"
    path = f"/{database}" if database is not None else parts.path
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
