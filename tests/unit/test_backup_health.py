"""The dev backup container's health: what makes ``backup-health`` fail, on a real directory
bucket and a real status file (the servers are not needed: only the bucket is read)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.backup import health
from infra.backup.storage import FileBucket
from infra.cli import main
from tests.unit.backup_fakes import add_backup

HOURLY = "0 * * * *"
NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)


@pytest.fixture
def bucket(tmp_path: Path) -> FileBucket:
    root = tmp_path / "bucket"
    root.mkdir()
    return FileBucket(root)


def started(hours_ago: float, failed: tuple[str, ...] = ()) -> health.LoopStatus:
    return health.LoopStatus(NOW - timedelta(hours=hours_ago), NOW, failed)


def test_a_recent_verified_backup_and_a_clean_run_are_healthy(bucket: FileBucket) -> None:
    add_backup(bucket, NOW - timedelta(minutes=50), verified=True)
    assert health.problems(bucket, ["users"], HOURLY, started(5), NOW, None) == []


def test_a_failed_last_run_is_unhealthy_even_with_recent_backups(bucket: FileBucket) -> None:
    add_backup(bucket, NOW - timedelta(minutes=50), verified=True)
    found = health.problems(
        bucket, ["users"], HOURLY, started(5, ("backup postgres/users",)), NOW, None
    )
    assert found == ["the last run failed: backup postgres/users"]


def test_backups_older_than_two_periods_are_unhealthy(bucket: FileBucket) -> None:
    add_backup(bucket, NOW - timedelta(hours=2, minutes=1), verified=True)
    add_backup(bucket, NOW - timedelta(minutes=10), verified=False)  # not verified: not counted
    (problem,) = health.problems(bucket, ["users"], HOURLY, started(5), NOW, None)
    assert problem.startswith("users: the newest verified backup is 7260s old"), problem


def test_no_backup_is_fine_only_within_two_periods_of_the_start(bucket: FileBucket) -> None:
    assert health.problems(bucket, ["users"], HOURLY, started(1.5), NOW, None) == []
    (problem,) = health.problems(bucket, ["users"], HOURLY, started(2.5), NOW, None)
    assert problem == "users: no verified backup 7200s after the loop started"


def test_no_status_means_the_loop_is_not_running(bucket: FileBucket, tmp_path: Path) -> None:
    assert health.read_status(tmp_path / "missing.json") is None
    (tmp_path / "corrupt.json").write_text("{not json", encoding="utf-8")
    assert health.read_status(tmp_path / "corrupt.json") is None, "a corrupt status is no status"
    found = health.problems(bucket, ["users"], HOURLY, None, NOW, None)
    assert found == ["the backup loop has written no status: is it running?"]


def test_the_status_file_round_trips(tmp_path: Path) -> None:
    status = started(3, ("verify postgres/users",))
    health.write_status(tmp_path / "status.json", status)
    assert health.read_status(tmp_path / "status.json") == status


def test_the_command_exits_1_with_one_line_per_problem(
    bucket: FileBucket, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(
        "config:\n  persistence:platform: docker\n  persistence:services: [{name: users}]\n",
        encoding="utf-8",
    )
    status_file = tmp_path / "status.json"
    argv = ["backup-health", "--stack", str(stack), "--bucket", f"file://{bucket.root}"]
    argv += ["--status-file", str(status_file)]
    health.write_status(status_file, health.LoopStatus(datetime.now(UTC), None, ("boom",)))
    assert main(argv) == 1
    assert capsys.readouterr().out == "unhealthy: the last run failed: boom\n"
    add_backup(bucket, datetime.now(UTC), verified=True)
    health.write_status(status_file, health.LoopStatus(datetime.now(UTC), datetime.now(UTC)))
    assert main(argv) == 0
    assert capsys.readouterr().out == "healthy\n"
