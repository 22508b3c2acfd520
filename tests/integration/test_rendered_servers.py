"""Real PostgreSQL 15 and Valkey 8.0 servers start from the rendered files and enforce them."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import redis

from infra.config.model import StackConfig
from infra.credentials import Credentials
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer


def test_postgres_runs_the_rendered_settings(
    postgres: PostgresServer, dev_config: StackConfig
) -> None:
    with psycopg.connect(postgres.admin_url) as conn:

        def show(name: str) -> str:
            row = conn.execute(f"SHOW {name}").fetchone()
            assert row is not None
            return str(row[0])

        assert show("password_encryption") == "scram-sha-256"
        assert show("shared_preload_libraries") == "pg_stat_statements"
        assert show("log_min_duration_statement") == "1s"
        assert show("max_connections") == str(dev_config.postgres.max_connections)
        assert show("server_version").startswith("15.")


def test_the_admin_login_is_not_a_superuser(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.admin_url) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
            "FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    assert row == (False, True, True, False, False)


def test_the_superuser_is_refused_over_tcp(postgres: PostgresServer) -> None:
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects connection"):
        psycopg.connect(postgres.url("postgres", "anything"), connect_timeout=5)


def test_a_login_not_in_pg_hba_is_refused(postgres: PostgresServer) -> None:
    postgres.superuser_psql("CREATE ROLE stranger LOGIN PASSWORD 'stranger-pw'")
    try:
        with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
            psycopg.connect(postgres.url("stranger", "stranger-pw"), connect_timeout=5)
    finally:
        postgres.superuser_psql("DROP ROLE stranger")


def test_a_wrong_admin_password_is_refused(
    postgres: PostgresServer, dev_config: StackConfig
) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.url(dev_config.postgres.admin_user, "wrong"), connect_timeout=5)


def test_pg_stat_statements_collects(postgres: PostgresServer) -> None:
    postgres.superuser_psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    assert int(postgres.superuser_psql("SELECT count(*) FROM pg_stat_statements")) > 0


def test_redis_runs_the_rendered_durability_settings(
    redis_server: RedisServer, dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> None:
    _, credentials = dev_rendered
    admin = redis.Redis(
        port=redis_server.port,
        username=dev_config.redis.admin_user,
        password=credentials.redis_admin,
        decode_responses=True,
    )
    assert admin.config_get("appendonly") == {"appendonly": "yes"}
    assert admin.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert admin.config_get("save")["save"] == "3600 1 300 100 60 10000"
    assert admin.config_get("maxmemory")["maxmemory"] == str(dev_config.redis.maxmemory_mb * 2**20)
    assert admin.config_get("protected-mode") == {"protected-mode": "yes"}


def test_redis_default_user_cannot_authenticate(redis_server: RedisServer) -> None:
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis_server.client("default", "").ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis_server.client().ping()
