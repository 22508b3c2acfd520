"""``prune``: delete backups outside the kept generations, never the newest verified one.

Prod buckets have a retention policy: a delete it refuses is reported, not fatal. The manifest
goes first, so a half-pruned backup is never listed as restorable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from infra.backup import retention
from infra.backup.catalog import (
    MANIFEST,
    Entry,
    incomplete_prefixes,
    is_backup_folder,
    parse_id,
    scan,
)
from infra.backup.storage import Bucket, FileBucket, RetentionLockedError
from infra.config.model import KeepGenerations

INCOMPLETE_GRACE = timedelta(days=1)  # an incomplete folder younger than this may be running


@dataclass
class PruneReport:
    kept: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # unreadable manifests/records, skipped


def plan(backups: list[Entry], generations: KeepGenerations) -> tuple[list[Entry], list[Entry]]:
    """(keep, delete) for one service's backups.

    A backup whose last verification failed can never be restored: it fills no generation
    (the newest restorable backup of that hour/day/... does) and is deleted.
    """
    restorable = [e for e in backups if e.state != "failed"]
    by_time = {e.manifest.started: e for e in restorable}
    verified = [e for e in restorable if e.state == "verified"]
    newest_verified = max((e.manifest.started for e in verified), default=None)
    kept = retention.keep(list(by_time), generations, newest_verified)
    keep = [e for e in restorable if e.manifest.started in kept]
    drop = [e for e in backups if e.state == "failed" or e.manifest.started not in kept]
    return keep, drop


def prune(
    bucket: Bucket,
    generations: KeepGenerations,
    now: datetime,
    *,
    key: bytes | None,
    dry_run: bool = False,
) -> PruneReport:
    """Only proven backups (``catalog.scan`` with ``key``) are counted or deleted: a refused
    manifest's folder is reported and left alone, so planted entries can neither fill a
    generation nor be taken over; folders without a manifest that are not ours are ignored."""
    report = PruneReport()
    groups: dict[tuple[str, str, str], list[Entry]] = {}
    found, report.problems = scan(bucket, key=key, now=now)
    # Safety backups (what restores replaced, dumped by the next backup run, right next to
    # the service's own backup) are generations of their own: they never fill a period or
    # count as the newest verified backup in place of a backup of the live database.
    for entry in found:
        m = entry.manifest
        groups.setdefault((m.kind, m.service, str(entry.is_safety)), []).append(entry)
    for backups in groups.values():
        keep, drop = plan(backups, generations)
        report.kept += [e.manifest.prefix for e in keep]
        for entry in drop:
            _delete_folder(bucket, entry.manifest.prefix, report, dry_run)
    for head in incomplete_prefixes(bucket):
        if not is_backup_folder(head):
            continue  # not ours
        try:
            started = parse_id(head.rstrip("/").rsplit("/", 1)[-1])
        except ValueError:
            continue  # not ours
        if now - started > INCOMPLETE_GRACE:
            _delete_folder(bucket, head, report, dry_run)
    if isinstance(bucket, FileBucket):
        for partial in bucket.stale_partials(INCOMPLETE_GRACE.total_seconds()):
            report.deleted.append(partial.relative_to(bucket.root).as_posix())
            if not dry_run:
                partial.unlink(missing_ok=True)
    return report


def _delete_folder(bucket: Bucket, head: str, report: PruneReport, dry_run: bool) -> None:
    names = bucket.names(head)
    names.sort(key=lambda name: name != head + MANIFEST)  # the manifest first
    if dry_run:
        report.deleted.append(head)
        return
    try:
        for name in names:
            bucket.delete(name)
    except RetentionLockedError as error:
        report.refused.append(f"{head}: {error}")
        return
    report.deleted.append(head)
