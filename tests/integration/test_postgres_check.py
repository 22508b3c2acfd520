"""``db plan --check [--json]`` as the drift job runs it: a subprocess against a real server.

Every hand-made drift of ``test_postgres_drift.DRIFTS``, and the hostile drift of
``test_postgres_takeover`` (a stranger member, a password changed by its login, an object a
login owns), must make ``--check`` exit 1 and name the statement that would repair it (in text
and in JSON); after ``db apply`` it exits 0. The drift job relies on exactly this exit code to
fail, and so to notify.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from infra import secrets_file
from infra.config import StackConfig
from infra.credentials import Credentials
from tests.integration.postgres_support import cli, service_url
from tests.integration.test_postgres_cli import admin_url_without_password
from tests.integration.test_postgres_drift import DRIFTS, Drift
from tests.servers.postgres import PostgresServer

Rendered = tuple[Path, Credentials]

# The takeover tests' drift, made here by the superuser on the audit service.
TAKEOVER_DRIFTS = [
    Drift(
        "a stranger made a member of a service role",
        "CREATE ROLE mallory_check NOLOGIN; GRANT audit_app TO mallory_check",
        'REVOKE "audit_app" FROM "mallory_check"',
        "SELECT true",
    ),
    Drift(
        "a password changed behind the tool's back",
        "ALTER ROLE audit_app PASSWORD 'mine-now'",
        "ALTER ROLE \"audit_app\" PASSWORD '[REDACTED]'",
        "SELECT true",
    ),
    Drift(
        "an object owned by a service login",
        "SET ROLE audit_app; SELECT lo_create(0)",
        'REASSIGN OWNED BY "audit_app" TO "audit_owner"',
        "SELECT true",
    ),
]
ALL_DRIFTS = DRIFTS + TAKEOVER_DRIFTS


@pytest.fixture(scope="module")
def common(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
    dev_config: StackConfig,
    dev_rendered: Rendered,
) -> list[str]:
    """CLI options for a converged server, with the audit table the drift cases act on."""
    rendered, credentials = dev_rendered
    secrets = tmp_path_factory.mktemp("check") / "dev.secrets.json"
    secrets_file.write(secrets, credentials)
    url = admin_url_without_password(postgres, dev_config.postgres.admin_user)
    options = ["--stack", "dev", "--secrets", str(secrets), "--admin-url", url]
    before = cli("db", "plan", "--check", *options)
    assert before.returncode == 1, "an empty server is not converged"
    applied = cli("db", "apply", *options)
    assert applied.returncode == 0, applied.stderr
    with psycopg.connect(service_url(rendered, postgres, "audit", "migrator")) as conn:
        conn.execute("CREATE TABLE entries (id bigserial PRIMARY KEY, body text)")
    return options


def test_a_converged_server_passes_the_check(common: list[str]) -> None:
    result = cli("db", "plan", "--check", "--json", *common)
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["converged"] is True
    assert document["statement_count"] == 0
    assert {s["service"] for s in document["services"]} == {
        "auth",
        "authorization",
        "users",
        "audit",
        "events",
    }


@pytest.mark.parametrize("drift", ALL_DRIFTS, ids=[d.name for d in ALL_DRIFTS])
def test_check_fails_on_drift_and_passes_after_apply(
    postgres: PostgresServer, common: list[str], drift: Drift
) -> None:
    postgres.superuser_psql(drift.damage, drift.database)

    text = cli("db", "plan", "--check", *common)
    assert text.returncode == 1, f"--check missed {drift.name}: {text.stdout}"
    assert f"audit: {drift.expected}" in text.stdout
    assert any(
        line.startswith("drift: ") and "audit" in line for line in text.stdout.splitlines()
    ), text.stdout

    as_json = cli("db", "plan", "--check", "--json", *common)
    assert as_json.returncode == 1, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["converged"] is False
    audit = next(s for s in document["services"] if s["service"] == "audit")
    assert audit["converged"] is False
    assert drift.expected in audit["statements"]
    # A grant between two services' roles is drift of both: each plan revokes its side.
    drifting = {s["service"] for s in document["services"] if not s["converged"]}
    assert drifting <= {"audit", "events"}, f"{drift.name} showed up as drift of {drifting}"

    applied = cli("db", "apply", *common)
    assert applied.returncode == 0, applied.stderr
    after = cli("db", "plan", "--check", "--json", *common)
    assert after.returncode == 0, f"still drifting after apply ({drift.name}): {after.stdout}"
    assert json.loads(after.stdout)["converged"] is True
