"""prune over a real directory bucket: exact generations kept, retention refusals reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from infra.backup.catalog import entries, new_id
from infra.backup.prune import prune
from infra.backup.storage import FileBucket, RetentionLockedError
from infra.config.model import KeepGenerations
from tests.unit.backup_fakes import add_backup

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class LockedBucket(FileBucket):
    """A bucket whose retention policy still protects objects younger than ``locked_after``."""

    def __init__(self, root: Path, locked_after: datetime) -> None:
        super().__init__(root)
        self.locked_after = locked_after

    def delete(self, name: str) -> None:
        stamp = datetime.strptime(name.split("/")[2], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
        if stamp > self.locked_after:
            raise RetentionLockedError(f"{name} is under the bucket's retention policy")
        super().delete(name)


def test_prune_keeps_the_asked_generations_and_reports_retention_refusals(
    tmp_path: Path,
) -> None:
    bucket = LockedBucket(tmp_path, locked_after=NOW - timedelta(hours=3))
    ids = [add_backup(bucket, NOW - timedelta(hours=h)) for h in range(8)]
    report = prune(bucket, KeepGenerations(hourly=2, daily=0, weekly=0, monthly=0), NOW, key=None)
    assert sorted(report.kept) == sorted(f"postgres/users/{i}/" for i in ids[:2])
    # the 2-hour-old backup is still locked: reported, not fatal, and still complete
    assert [line.split(":")[0] for line in report.refused] == [f"postgres/users/{ids[2]}/"]
    assert {e.manifest.backup_id for e in entries(bucket, key=None)} == {ids[0], ids[1], ids[2]}
    assert sorted(report.deleted) == sorted(f"postgres/users/{i}/" for i in ids[3:])


def test_prune_removes_partial_files_left_by_killed_backups(tmp_path: Path) -> None:
    import os

    bucket = FileBucket(tmp_path)
    folder = tmp_path / "postgres" / "users" / new_id(NOW)
    folder.mkdir(parents=True)
    old = folder / ".dump.pgcustom.partial-1a2b3c4d"
    old.write_bytes(b"half a dump")
    os.utime(old, (0, 0))
    fresh = folder / ".dump.pgcustom.partial-5e6f7a8b"
    fresh.write_bytes(b"still being written")
    report = prune(bucket, KeepGenerations(), datetime.now(UTC), key=None)
    assert not old.exists()
    assert fresh.exists()
    assert report.deleted == [old.relative_to(tmp_path).as_posix()]


def test_a_failed_backup_never_fills_a_kept_generation(tmp_path: Path) -> None:
    """The newest backup of an hour failed verification: the newest restorable one of that hour
    is kept in its place, and the failed one is deleted."""
    bucket = FileBucket(tmp_path)
    good = add_backup(bucket, NOW - timedelta(minutes=40), verified=True)
    unverified = add_backup(bucket, NOW - timedelta(minutes=20))
    failed = add_backup(bucket, NOW - timedelta(minutes=10), verified=False)
    older_failed = add_backup(bucket, NOW - timedelta(hours=5), verified=False)
    report = prune(bucket, KeepGenerations(hourly=1, daily=0, weekly=0, monthly=0), NOW, key=None)
    assert sorted(report.kept) == sorted(f"postgres/users/{i}/" for i in (good, unverified))
    assert sorted(report.deleted) == sorted(f"postgres/users/{i}/" for i in (failed, older_failed))
    assert {e.manifest.backup_id for e in entries(bucket, key=None)} == {good, unverified}
