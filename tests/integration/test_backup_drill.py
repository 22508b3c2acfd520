"""dr-drill: every service back on an EMPTY server from its newest verified backup."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from infra.config import StackConfig
from infra.credentials import Credentials
from infra.postgres import apply
from tests.integration.backup_helpers import (
    admin_url_without_password,
    assert_role_model,
    cli,
    databases,
    fingerprint,
    login_url,
    secrets_path,
    seed,
)
from tests.servers.postgres import PostgresServer


@pytest.fixture(scope="module")
def empty_server(
    dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> Iterator[PostgresServer]:
    """A second, freshly initialised server: the disaster-recovery target."""
    rendered, credentials = dev_rendered
    server = PostgresServer(
        rendered, dev_config.postgres.admin_user, credentials.postgres_admin
    ).initialise()
    yield server
    server.cleanup()


def test_dr_drill_rebuilds_every_service_and_reports_rto_rpo(
    postgres: PostgresServer,
    empty_server: PostgresServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
) -> None:
    rendered, credentials = dev_rendered
    secrets = ["--stack", "dev", "--secrets", str(secrets_path(rendered))]
    admin = dev_config.postgres.admin_user
    source = [*secrets, "--admin-url", admin_url_without_password(postgres, admin)]
    target = [*secrets, "--admin-url", admin_url_without_password(empty_server, admin)]
    bucket = f"file://{tmp_path / 'bucket'}"
    apply(postgres.admin_url, dev_config, credentials)
    seed(postgres, credentials, "users")
    seed(
        postgres,
        credentials,
        "audit",
        "CREATE TABLE entries (id serial PRIMARY KEY, what text);"
        "INSERT INTO entries (what) SELECT 'event ' || g FROM generate_series(1, 300) g;",
    )
    assert cli("backup", *source, "--bucket", bucket)[0] == 0
    assert cli("verify", *source, "--bucket", bucket)[0] == 0
    # the prod-dr runbook's target: `pulumi up` has provisioned databases and roles, no data
    apply(empty_server.admin_url, dev_config, credentials)

    code, out, err = cli("dr-drill", *target, "--bucket", bucket)
    assert code == 0, err + out
    report = json.loads(out)
    assert report["ok"] is True
    assert set(report["services"]) == {s.name for s in dev_config.services}
    for name, item in report["services"].items():
        assert item["ok"], (name, item)
        assert item["recovery_time_s"] > 0
        assert item["recovery_point_s"] >= 0
    assert fingerprint(empty_server, "users") == fingerprint(postgres, "users")
    assert empty_server.superuser_psql("SELECT count(*) FROM entries", "audit") == "300"
    assert not [n for n in databases(empty_server) if "__" in n]
    for spec in dev_config.services:
        assert_role_model(empty_server, spec.name, empty_server.admin_url, dev_config, credentials)
    # the rebuilt server follows the role model: each app login reaches only its own database
    with psycopg.connect(login_url(empty_server, credentials, "audit", "app")) as conn:
        assert conn.execute("SELECT count(*) FROM entries").fetchone() == (300,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            login_url(empty_server, credentials, "users", "app", "audit"), connect_timeout=5
        ).close()

    # a second drill refuses a server that is not empty (it would clobber live data)
    code, _, err = cli("dr-drill", *target, "--bucket", bucket)
    assert code == 2, err
    assert "empty PostgreSQL server" in err
    assert "already hold data" in err


def test_dr_drill_fails_when_a_service_has_no_verified_backup(
    postgres: PostgresServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
) -> None:
    rendered, credentials = dev_rendered
    fresh = PostgresServer(
        rendered, dev_config.postgres.admin_user, credentials.postgres_admin
    ).initialise()
    try:
        secrets = ["--stack", "dev", "--secrets", str(secrets_path(rendered))]
        bucket = f"file://{tmp_path / 'bucket'}"
        source = [
            *secrets,
            "--admin-url",
            admin_url_without_password(postgres, dev_config.postgres.admin_user),
        ]
        assert cli("backup", *source, "--bucket", bucket, "--service", "users")[0] == 0
        assert cli("verify", *source, "--bucket", bucket)[0] == 0
        code, out, _ = cli(
            "dr-drill",
            *secrets,
            "--admin-url",
            admin_url_without_password(fresh, dev_config.postgres.admin_user),
            "--bucket",
            bucket,
        )
        assert code == 1
        report = json.loads(out)
        assert report["ok"] is False
        assert report["services"]["users"]["ok"] is True
        assert "no verified backup of postgres/auth" in report["services"]["auth"]["error"]
    finally:
        fresh.cleanup()
