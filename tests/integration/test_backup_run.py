"""``backup-run`` against a real PostgreSQL server and the GCS emulator, as the prod job runs it:
the admin password from the environment (no secrets file), the bucket's ``verified/`` prefix,
and optionally a separate verification server that starts with no roles at all."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from infra.backup import catalog
from infra.backup.dump import Target, backup_postgres
from infra.backup.storage import open_bucket
from infra.commands.backup import ADMIN_PASSWORD_ENV, VERIFIED_EVENT
from infra.config import StackConfig
from infra.config.model import ServiceSpec
from infra.credentials import Credentials
from infra.postgres import apply
from infra.postgres.drop import drop_service
from infra.render.postgres import pg_hba_conf
from tests.integration.backup_helpers import admin_url_without_password, cli, databases, seed
from tests.servers.gcs import GcsEmulator
from tests.servers.postgres import PostgresServer

SERVICES = ("auth", "authorization", "users", "audit", "events")


@pytest.fixture(scope="module")
def converged(
    postgres: PostgresServer, dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> tuple[PostgresServer, Credentials]:
    _, credentials = dev_rendered
    apply(postgres.admin_url, dev_config, credentials)
    seed(postgres, credentials, "users")
    return postgres, credentials


def _job_args(server: PostgresServer, config: StackConfig, bucket: str) -> list[str]:
    """What the Cloud Run job passes: a stack, a bucket and an admin URL without password."""
    admin = admin_url_without_password(server, config.postgres.admin_user)
    return ["backup-run", "--stack", "dev", "--bucket", bucket, "--admin-url", admin]


def test_backup_run_verifies_every_service_into_gcs_with_the_password_from_the_environment(
    converged: tuple[PostgresServer, Credentials],
    dev_config: StackConfig,
    gcs: GcsEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, credentials = converged
    monkeypatch.setenv(ADMIN_PASSWORD_ENV, credentials.postgres_admin)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    bucket = "gs://backups/verified"
    code, out, err = cli(*_job_args(server, dev_config, bucket))
    assert code == 0, err + out
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert sorted(x["service"] for x in lines if x["event"] == VERIFIED_EVENT) == sorted(SERVICES)
    states = {e.manifest.service: e.state for e in catalog.entries(open_bucket(bucket), key=None)}
    assert states == dict.fromkeys(SERVICES, "verified")
    assert not (tmp_path / "home").exists(), "the job must not write a secrets file"


def test_a_wrong_admin_password_fails_the_run_and_names_it(
    converged: tuple[PostgresServer, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, _ = converged
    monkeypatch.setenv(ADMIN_PASSWORD_ENV, "not-the-password")
    bucket = f"file://{tmp_path / 'bucket'}"
    code, out, err = cli(*_job_args(server, dev_config, bucket))
    assert code == 1, err + out
    assert "backup-run failed" in err, err
    for service in SERVICES:
        assert f"backup postgres/{service}" in err, err
    assert VERIFIED_EVENT not in out


def test_verification_on_a_separate_server_converges_roles_there_first(
    converged: tuple[PostgresServer, Credentials],
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, credentials = converged
    rendered, _ = dev_rendered
    verifier = PostgresServer(
        rendered, dev_config.postgres.admin_user, credentials.postgres_admin
    ).initialise()
    try:
        monkeypatch.setenv(ADMIN_PASSWORD_ENV, credentials.postgres_admin)
        bucket = f"file://{tmp_path / 'bucket'}"
        verify_url = admin_url_without_password(verifier, dev_config.postgres.admin_user)
        args = [*_job_args(server, dev_config, bucket), "--verify-admin-url", verify_url]
        before = set(databases(server))
        code, out, err = cli(*args)
        assert code == 0, err + out
        states = {
            e.manifest.service: e.state for e in catalog.entries(open_bucket(bucket), key=None)
        }
        assert states == dict.fromkeys(SERVICES, "verified")
        assert set(databases(server)) == before, "nothing restored on the backed-up server"
        assert not [n for n in databases(verifier) if "__verify" in n], "scratch left behind"
    finally:
        verifier.cleanup()


def test_a_removed_services_backup_does_not_fail_every_run_after_it(
    postgres: PostgresServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A service backed up, then removed (``db drop``) before the backup was verified: its
    roles are gone, so it cannot be restored as its owner. The scheduled run keeps the backup,
    unverified, says so, and does not fail; before, every later run failed on it (the dev
    stack's backup container stayed unhealthy)."""
    _, credentials = dev_rendered
    leaving = dataclasses.replace(
        dev_config, services=(*dev_config.services, ServiceSpec(name="leaving"))
    )
    with_leaving = credentials.completed_for(leaving)
    hba = postgres.conf / "pg_hba.conf"
    hba.write_text(pg_hba_conf(leaving))  # as the dev stack's live config does for a new service
    postgres.superuser_psql("SELECT pg_reload_conf()")
    try:
        apply(postgres.admin_url, leaving, with_leaving)
        bucket = f"file://{tmp_path / 'bucket'}"
        target = Target(open_bucket(bucket), None)
        taken = backup_postgres(target, postgres.admin_url, "leaving", dev_config.backup.format)
        drop_service(postgres.admin_url, "leaving")
    finally:
        hba.write_text(pg_hba_conf(dev_config))
        postgres.superuser_psql("SELECT pg_reload_conf()")
    apply(postgres.admin_url, dev_config, credentials)
    monkeypatch.setenv(ADMIN_PASSWORD_ENV, credentials.postgres_admin)
    code, out, err = cli(*_job_args(postgres, dev_config, bucket))
    assert code == 0, err + out
    assert f"postgres/leaving {taken.backup_id}: not verified, the service is no longer" in out
    states = {
        (e.manifest.service, e.manifest.backup_id): e.state
        for e in catalog.entries(open_bucket(bucket), key=None)
    }
    assert states[("leaving", taken.backup_id)] == "unverified", "kept, and not called verified"
    assert {s for (s, _), state in states.items() if state == "verified"} == set(SERVICES)
