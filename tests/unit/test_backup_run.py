"""``backup-run``: one scheduled run whose exit code and log lines a cloud scheduler can trust.

The servers are replaced by fakes at the module's seams (``backup_postgres``, ``verify``), so
what is tested is the run's bookkeeping: every failure named, exit 1, and the structured
"verified" line only for backups that really verified.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.backup import dump, leftovers, verify
from infra.backup.catalog import Entry, Manifest, Verification, entries, write_verification
from infra.backup.leftovers import Leftovers
from infra.backup.storage import FileBucket
from infra.cli import main
from infra.commands import backup as commands
from infra.errors import PlatformError
from tests.unit.backup_fakes import add_backup

STACK = """\
config:
  persistence:platform: gcp
  persistence:services:
    - name: users
    - name: orders
"""


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    stack = tmp_path / "Pulumi.prod.yaml"
    stack.write_text(STACK, encoding="utf-8")
    bucket_dir = tmp_path / "bucket"
    bucket_dir.mkdir()
    monkeypatch.setenv(commands.ADMIN_PASSWORD_ENV, "from-secret-manager")
    monkeypatch.delenv(commands.VERIFY_ADMIN_URL_ENV, raising=False)
    monkeypatch.delenv("PERSISTENCE_BACKUP_KEY", raising=False)
    seen: dict[str, Any] = {"admin_urls": []}

    def fake_backup(target: Any, admin_url: str, name: str, fmt: str) -> Manifest:
        seen["admin_urls"].append(admin_url)
        if name == "orders":
            raise PlatformError("permission denied for table orders")
        backup_id = add_backup(FileBucket(bucket_dir), datetime.now(UTC))
        return next(
            e.manifest
            for e in entries(target.bucket, key=None)
            if e.manifest.backup_id == backup_id
        )

    def fake_verify(
        bucket: Any, entry: Entry, admin_url: str | None, key: bytes | None
    ) -> Verification:
        result = Verification(
            entry.manifest.backup_id, datetime.now(UTC).isoformat(), True, [], 0.1
        )
        write_verification(bucket, entry, result, key)
        return result

    # The command imports these when it runs (not at start-up), so they are replaced at home.
    monkeypatch.setattr(dump, "backup_postgres", fake_backup)
    # Finding and finishing an interrupted restore needs a server (test_restore_recovery.py and
    # test_leftovers_cost.py prove it): no restore ran here.
    monkeypatch.setattr(
        leftovers, "find", lambda admin_url, names: Leftovers(frozenset(), frozenset())
    )
    monkeypatch.setattr(verify, "verify", fake_verify)
    argv = [
        "backup-run",
        "--stack",
        str(stack),
        "--bucket",
        f"file://{bucket_dir}",
        "--admin-url",
        "postgresql://platform_admin@10.0.0.3:5432/postgres",
    ]
    return {"argv": argv, "seen": seen, "bucket": bucket_dir}


def test_a_failed_service_is_named_and_the_run_exits_1(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(setup["argv"]) == 1
    err = capsys.readouterr().err
    assert "backup-run failed" in err, err
    assert "backup postgres/orders" in err, err
    assert "users" not in err.split("backup-run failed")[1], "users succeeded; must not be named"


def test_only_verified_backups_write_the_monitoring_line(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    main(setup["argv"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [(x["event"], x["service"], x["stack"]) for x in lines] == [
        (commands.VERIFIED_EVENT, "users", "prod")
    ], lines
    assert lines[0]["severity"] == "NOTICE"


def test_the_admin_password_comes_from_the_environment_not_a_secrets_file(
    setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    main(setup["argv"])
    assert all("from-secret-manager" in url for url in setup["seen"]["admin_urls"])
    assert not (tmp_path / "home").exists(), "backup-run must not create a secrets file"


def test_a_clean_run_exits_0(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stack = Path(setup["argv"][2])
    stack.write_text(STACK.replace("    - name: orders\n", ""), encoding="utf-8")
    assert main(setup["argv"]) == 0


@pytest.mark.parametrize(
    "change",
    [
        {"started_at": "garbage"},
        {"sha256": 12345},
        {"size": "2766"},
        {"row_counts": None},
        {"format": "tar"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_a_malformed_manifest_never_fails_the_run(
    setup: dict[str, Any], change: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20, class 2: one bad record used to fail every scheduled run, for every service
    (prune's traceback). It is reported in one line and the run goes on."""
    stack = Path(setup["argv"][2])
    stack.write_text(STACK.replace("    - name: orders\n", ""), encoding="utf-8")
    bucket = FileBucket(setup["bucket"])
    bad = add_backup(bucket, datetime.now(UTC) - timedelta(hours=3), verified=True)
    manifest = setup["bucket"] / "postgres" / "users" / bad / "manifest.json"
    document = {**json.loads(manifest.read_bytes()), **change}
    manifest.unlink()
    manifest.write_text(json.dumps(document))
    assert main(setup["argv"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert f"postgres/users/{bad}/manifest.json: {next(iter(change))}" in captured.err, captured.err
    assert manifest.exists(), "never pruned: not proven ours"
    assert [json.loads(x)["service"] for x in captured.out.splitlines() if x.startswith("{")] == [
        "users"
    ]
