"""Backups written straight into a directory bucket, for tests of what reads a bucket."""

from __future__ import annotations

from datetime import datetime

from infra.backup.catalog import (
    Manifest,
    Verification,
    new_id,
    write_manifest,
    write_verification,
)
from infra.backup.storage import FileBucket


def add_backup(
    bucket: FileBucket, moment: datetime, verified: bool | None = None, manifest: bool = True
) -> str:
    """A small backup of ``users`` taken at ``moment``; optionally verified or incomplete."""
    backup_id = new_id(moment)
    written = Manifest(
        kind="postgres",
        service="users",
        backup_id=backup_id,
        object="dump.pgcustom",
        format="custom",
        started_at=moment.isoformat(),
        finished_at=moment.isoformat(),
        size=1,
        sha256="0" * 64,
        server_version="15.0",
        database="users",
    )
    bucket.write(written.object_name, [b"x"])
    if manifest:
        write_manifest(bucket, written)
    if verified is not None:
        write_verification(
            bucket, written, Verification(backup_id, moment.isoformat(), verified, [], 0.1)
        )
    return backup_id
