"""``python -m infra db ...`` as a user runs it: a subprocess, real server, real exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra import secrets_file
from infra.config import StackConfig
from infra.credentials import Credentials
from tests.integration.postgres_support import cli, login_error, service_url
from tests.servers.postgres import PostgresServer
from tests.servers.process import free_port

REPO = Path(__file__).resolve().parents[2]
Rendered = tuple[Path, Credentials]


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory, dev_rendered: Rendered) -> Path:
    """The rendered stack's credentials in a 0600 secrets file (as the CLI keeps them)."""
    path = tmp_path_factory.mktemp("cli") / "dev.secrets.json"
    secrets_file.write(path, dev_rendered[1])
    return path


def admin_url_without_password(server: PostgresServer, user: str) -> str:
    return f"postgresql://{user}@{server.host}:{server.port}/postgres"


def test_apply_against_a_server_that_is_down_is_one_clean_line(
    secrets: Path, dev_config: StackConfig
) -> None:
    url = f"postgresql://{dev_config.postgres.admin_user}@127.0.0.1:{free_port()}/postgres"
    result = cli("db", "apply", "--stack", "dev", "--secrets", str(secrets), "--admin-url", url)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: cannot connect to PostgreSQL"), lines


def test_a_refused_admin_login_is_one_clean_line_without_the_password(
    postgres: PostgresServer, secrets: Path, dev_config: StackConfig
) -> None:
    wrong = "not-the-admin-password-4711"
    result = cli(
        "db",
        "plan",
        "--stack",
        "dev",
        "--secrets",
        str(secrets),
        "--admin-url",
        admin_url_without_password(postgres, dev_config.postgres.admin_user),
        env={"PGPASSWORD": wrong},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert wrong not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "password authentication failed" in lines[0], lines


def test_plan_apply_rotate_and_drop_through_the_command_line(
    postgres: PostgresServer,
    secrets: Path,
    dev_config: StackConfig,
    dev_rendered: Rendered,
    tmp_path: Path,
) -> None:
    rendered, credentials = dev_rendered
    url = admin_url_without_password(postgres, dev_config.postgres.admin_user)
    common = ["--stack", "dev", "--secrets", str(secrets), "--admin-url", url]

    planned = cli("db", "plan", *common)
    assert planned.returncode == 0, planned.stderr
    assert 'users: CREATE EXTENSION "uuid-ossp"' in planned.stdout
    assert "PASSWORD '[REDACTED]'" in planned.stdout

    applied = cli("db", "apply", *common)
    assert applied.returncode == 0, applied.stderr
    again = cli("db", "apply", *common)
    assert again.returncode == 0, again.stderr
    assert "0 statement(s) executed" in again.stdout
    for service in ("auth", "users"):
        assert login_error(service_url(rendered, postgres, service, "app")) is None

    rotated = cli("db", "rotate", "--service", "users", *common)
    assert rotated.returncode == 0, rotated.stderr
    saved = json.loads(secrets.read_text())["services"]["users"]
    assert saved["version"] == credentials.for_service("users").version + 1
    assert login_error(service_url(rendered, postgres, "users", "app")) is not None
    assert login_error(postgres.url("users_app", saved["app"], "users")) is None
    for secret in (saved["app"], saved["migrator"], saved["readonly"]):
        assert secret not in rotated.stdout + rotated.stderr
        assert secret not in postgres.log_text()

    refused = cli("db", "drop", "--service", "events", "--confirm", "events", *common)
    assert refused.returncode == 2, refused.stderr
    assert "still in the dev stack config" in refused.stderr
    stack = tmp_path / "Pulumi.dev.yaml"
    original = (REPO / "Pulumi.dev.yaml").read_text()
    stack.write_text(original.replace("    - name: events\n", "    - name: events_gone\n"))
    without = ["--stack", str(stack), "--secrets", str(secrets), "--admin-url", url]
    kept = cli("db", "plan", *without)
    assert "events: on the server but not in the config; kept" in kept.stdout
    dropped = cli("db", "drop", "--service", "events", "--confirm", "events", *without)
    assert dropped.returncode == 0, dropped.stderr
    assert (
        postgres.superuser_psql("SELECT count(*) FROM pg_database WHERE datname = 'events'") == "0"
    )
