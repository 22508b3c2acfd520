"""Which backup ``restore --at`` picks, and what never counts as restorable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.backup.catalog import entries, find
from infra.backup.storage import FileBucket
from infra.errors import BackupError
from tests.unit.backup_fakes import add_backup

T0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def test_at_picks_the_newest_backup_taken_at_or_before_the_time(tmp_path: Path) -> None:
    bucket = FileBucket(tmp_path)
    first = add_backup(bucket, T0, verified=True)
    second = add_backup(bucket, T0 + timedelta(hours=1), verified=False)  # failed: never chosen
    third = add_backup(bucket, T0 + timedelta(hours=2))
    add_backup(bucket, T0 + timedelta(hours=3), manifest=False)  # incomplete: never listed
    assert [e.manifest.backup_id for e in entries(bucket, key=None)] == [third, second, first]
    assert find(bucket, "postgres", "users", key=None).manifest.backup_id == third
    assert (
        find(bucket, "postgres", "users", verified_only=True, key=None).manifest.backup_id == first
    )
    assert (
        find(bucket, "postgres", "users", "2026-11-20T04:30:00Z", key=None).manifest.backup_id
        == first
    )
    assert (
        find(bucket, "postgres", "users", "2026-11-20T05:00:00+00:00", key=None).manifest.backup_id
        == third
    )
    assert find(bucket, "postgres", "users", first, key=None).manifest.backup_id == first
    with pytest.raises(BackupError, match="at or before 2026-11-19"):
        find(bucket, "postgres", "users", "2026-11-19T00:00:00Z", key=None)
    with pytest.raises(BackupError, match="neither a backup id nor an ISO 8601 time"):
        find(bucket, "postgres", "users", "yesterday", key=None)
