"""Rendering: production settings in the server files, and env files every service can use."""

from __future__ import annotations

import dataclasses
import json
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.render import render_all
from infra.render.environment import render
from infra.render.postgres import postgresql_conf as render_postgresql_conf
from tests.unit.conf_text import key_values

REPO = Path(__file__).resolve().parents[2]
CONTRACT_FILES = (
    "postgres/postgresql.conf",
    "postgres/pg_hba.conf",
    "redis/redis.conf",
    "redis/users.acl",
    "rabbitmq/rabbitmq.conf",
    "rabbitmq/definitions.json",
)


@pytest.fixture(scope="module")
def credentials(dev_config: StackConfig) -> Credentials:
    return Credentials.generate().completed_for(dev_config)


def test_postgresql_conf_follows_production_practice(
    dev_config: StackConfig, credentials: Credentials
) -> None:
    conf = key_values(render_all(dev_config, credentials)["postgres/postgresql.conf"].content)
    assert conf["password_encryption"] == "scram-sha-256"
    assert conf["shared_preload_libraries"] == "'pg_stat_statements'"
    assert conf["log_min_duration_statement"] == "1000"
    assert conf["max_connections"] == str(dev_config.postgres.max_connections)


def test_max_connections_is_fixed_and_covers_the_services(dev_config: StackConfig) -> None:
    per_service = sum(
        s.connection_limits.app + s.connection_limits.migrator + s.connection_limits.readonly
        for s in dev_config.services
    )
    assert dev_config.connections_needed == per_service + dev_config.postgres.reserved_connections
    assert dev_config.connections_needed <= dev_config.postgres.max_connections
    # A service's limit changes its roles, never the server's config (no restart).
    more = dataclasses.replace(
        dev_config.services[0],
        connection_limits=dataclasses.replace(dev_config.services[0].connection_limits, app=21),
    )
    changed = dataclasses.replace(dev_config, services=(more, *dev_config.services[1:]))
    assert render_postgresql_conf(changed) == render_postgresql_conf(dev_config)


def test_pg_hba_admits_each_service_only_to_its_own_database(
    dev_config: StackConfig, credentials: Credentials
) -> None:
    hba = render_all(dev_config, credentials)["postgres/pg_hba.conf"].content
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert ["host", "all", "postgres", "all", "reject"] in rules
    for service in dev_config.services:
        logins = f"{service.name}_migrator,{service.name}_app,{service.name}_readonly"
        assert ["host", service.name, logins, "all", "scram-sha-256"] in rules
    assert all(rule[-1] in ("scram-sha-256", "reject", "peer") for rule in rules)
    # Over the network, no rule admits every login: each names its logins.
    assert all(rule[1:3] != ["all", "all"] for rule in rules if rule[0] == "host")


def test_init_admin_sql_holds_a_verifier_not_the_password(
    dev_config: StackConfig, credentials: Credentials
) -> None:
    sql = render_all(dev_config, credentials)["postgres/init-admin.sql"].content
    assert credentials.postgres_admin not in sql
    assert "PASSWORD 'SCRAM-SHA-256$4096:" in sql
    assert "NOSUPERUSER" in sql
    assert "CREATEROLE CREATEDB" in sql


def test_redis_conf_is_durable(dev_config: StackConfig, credentials: Credentials) -> None:
    lines = render_all(dev_config, credentials)["redis/redis.conf"].content.splitlines()
    assert "appendonly yes" in lines
    assert "appendfsync everysec" in lines
    assert any(line.startswith("save ") for line in lines)
    assert "protected-mode yes" in lines


def test_service_env_files_hold_every_contract_url(
    dev_config: StackConfig, credentials: Credentials
) -> None:
    files = render_all(dev_config, credentials)
    for service in dev_config.services:
        rendered = files[f"services/{service.name}.env"]
        assert rendered.mode == 0o600
        env = dict(
            line.split("=", 1)
            for line in rendered.content.splitlines()
            if line and not line.startswith("#")
        )
        own = credentials.for_service(service.name)
        expected_users = {
            "DATABASE_URL": (f"{service.name}_app", own.app),
            "MIGRATION_DATABASE_URL": (f"{service.name}_migrator", own.migrator),
            "READONLY_DATABASE_URL": (f"{service.name}_readonly", own.readonly),
            "REDIS_URL": (service.name, own.redis),
            "AMQP_URL": (service.name, own.rabbitmq),
        }
        for key, (user, password) in expected_users.items():
            url = urlsplit(env[key])
            assert (url.username, url.password) == (user, password), f"{service.name} {key}"
            assert url.hostname == "127.0.0.1"
        assert env["REDIS_KEY_PREFIX"] == f"{service.name}:"
        assert env["REDIS_SESSION_PREFIX"] == f"{service.name}:session:"
        assert urlsplit(env["DATABASE_URL"]).path == f"/{service.name}"
        assert urlsplit(env["AMQP_URL"]).path == f"/{service.name}"
        # The app and read-only logins go through the pooler; migrations straight to the server.
        ports = dev_config.docker.ports
        assert urlsplit(env["DATABASE_URL"]).port == ports.pooler
        assert urlsplit(env["READONLY_DATABASE_URL"]).port == ports.pooler
        assert urlsplit(env["MIGRATION_DATABASE_URL"]).port == ports.postgres


def test_without_the_pooler_every_database_url_goes_straight_to_postgres(
    dev_config: StackConfig, credentials: Credentials
) -> None:
    config = replace(
        dev_config,
        postgres=replace(
            dev_config.postgres,
            pooler=replace(dev_config.postgres.pooler, enabled=False),
            replicas=0,  # the replicas' reads go through the pooler
        ),
    )
    files = render_all(config, credentials)
    assert not [path for path in files if path.startswith("pgbouncer/")]
    for service in config.services:
        env = files[f"services/{service.name}.env"].content
        ports = {
            urlsplit(line.split("=", 1)[1]).port
            for line in env.splitlines()
            if "_URL=postgresql" in line
        }
        assert ports == {config.docker.ports.postgres}, service.name


def test_prod_env_files_use_private_dns_names_and_tls_for_redis(
    prod_config: StackConfig,
) -> None:
    credentials = Credentials.generate().completed_for(prod_config)
    env = render_all(prod_config, credentials)["services/users.env"].content
    assert "@postgres.persistence.internal:5432/users" in env
    assert "REDIS_URL=rediss://users:" in env
    assert "@redis.persistence.internal:6379/0" in env


def test_strict_undefined_refuses_a_missing_value() -> None:
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render("postgres/pg_hba.conf.j2", services=[])  # admin_user missing


def test_definitions_json_is_valid_json(dev_config: StackConfig, credentials: Credentials) -> None:
    document = json.loads(render_all(dev_config, credentials)["rabbitmq/definitions.json"].content)
    assert {v["name"] for v in document["vhosts"]} == {s.name for s in dev_config.services}


def test_render_command_writes_the_contract_files_with_private_modes(tmp_path: Path) -> None:
    out, secrets = tmp_path / "out", tmp_path / "dev.secrets.json"
    first = run_render(out, secrets)
    assert first.returncode == 0, first.stderr
    for relative in CONTRACT_FILES:
        assert (out / relative).is_file(), relative
    for service in ("auth", "authorization", "users", "audit", "events"):
        env = out / "services" / f"{service}.env"
        assert stat.S_IMODE(env.stat().st_mode) == 0o600, env
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "redis/users.acl").stat().st_mode) == 0o600


def test_render_is_stable_across_runs_with_the_same_secrets(tmp_path: Path) -> None:
    secrets = tmp_path / "dev.secrets.json"
    assert run_render(tmp_path / "a", secrets).returncode == 0
    assert run_render(tmp_path / "b", secrets).returncode == 0
    for path in sorted((tmp_path / "a").rglob("*")):
        if path.is_file():
            twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
            assert path.read_bytes() == twin.read_bytes(), f"{path} changed between renders"


def test_render_refuses_a_world_readable_secrets_file(tmp_path: Path) -> None:
    secrets = tmp_path / "dev.secrets.json"
    assert run_render(tmp_path / "a", secrets).returncode == 0
    secrets.chmod(0o644)
    result = run_render(tmp_path / "b", secrets)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {secrets}: mode 0644 lets other users read credentials; run `chmod 600 {secrets}`"
    )


def run_render(out: Path, secrets: Path, stack: str = "dev") -> subprocess.CompletedProcess[str]:
    """``python -m infra render`` as a user runs it; ``stack`` a name or a stack file's path."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "infra",
            "render",
            "--stack",
            stack,
            "--out",
            str(out),
            "--secrets",
            str(secrets),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
