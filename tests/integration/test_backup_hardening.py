"""Backups on a bad day: one broken service, an unverified newest backup."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.backup_helpers import cli
from tests.servers.postgres import PostgresServer


def _ids(bucket: str, service: str) -> list[str]:
    code, out, _ = cli("list", "--bucket", bucket, "--service", service, "--json")
    assert code == 0
    return [item["backup_id"] for item in json.loads(out)]


def test_one_failing_service_does_not_stop_the_others(
    postgres: PostgresServer, common: list[str], tmp_path: Path
) -> None:
    bucket = f"file://{tmp_path / 'bucket'}"
    # A table its owner role cannot read: pg_dump (as the owner) fails for auth only.
    postgres.superuser_psql("CREATE ROLE stranger; CREATE TABLE hidden (i int)", "auth")
    postgres.superuser_psql("ALTER TABLE hidden OWNER TO stranger", "auth")
    try:
        code, _, err = cli("backup", *common, "--bucket", bucket)
        assert code == 1
        assert "backup failed for auth" in err
        for other in ("authorization", "users", "audit", "events"):
            assert len(_ids(bucket, other)) == 1, f"{other} was not backed up"
    finally:
        postgres.superuser_psql("DROP TABLE hidden", "auth")
