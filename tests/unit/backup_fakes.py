"""Backups written straight into a directory bucket, for tests of what reads a bucket."""

from __future__ import annotations

import hashlib
from datetime import datetime

from infra.backup import crypto
from infra.backup.catalog import (
    Entry,
    Manifest,
    Verification,
    new_id,
    write_manifest,
    write_verification,
)
from infra.backup.storage import FileBucket


def add_backup(
    bucket: FileBucket,
    moment: datetime,
    verified: bool | None = None,
    manifest: bool = True,
    key: bytes | None = None,
) -> str:
    """A small backup of ``users`` taken at ``moment``; optionally verified or incomplete.

    Its checksum and size are the object's own, so a reader that checks them (fetch) goes on.
    """
    backup_id = new_id(moment)
    content = b"x"
    written = Manifest(
        kind="postgres",
        service="users",
        backup_id=backup_id,
        object="dump.pgcustom",
        format="custom",
        started_at=moment.isoformat(),
        finished_at=moment.isoformat(),
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        server_version="15.0",
        database="users",
        encrypted=key is not None,
        key_id=None if key is None else crypto.key_id(key),
    )
    bucket.write(written.object_name, [content])
    if manifest:
        write_manifest(bucket, written, key)
    if verified is not None:
        write_verification(
            bucket,
            Entry(written, (), written.prefix),
            Verification(backup_id, moment.isoformat(), verified, [], 0.1),
            key,
        )
    return backup_id
