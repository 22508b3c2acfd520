"""Where backup objects live in a bucket, their manifests, and what counts as restorable.

Layout: ``<kind>/<service>/<backup id>/`` holding the data object, ``manifest.json`` (written
last: without it the backup is incomplete and never listed) and one
``verification-<time>.json`` per verify run (new objects, since buckets never overwrite).
What is read back is proven first (``infra.backup.records``): the folder decides what a backup
is, and a manifest that disagrees with it, or fails authentication, is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from infra.backup.records import ID_FORMAT as ID_FORMAT
from infra.backup.records import KINDS as KINDS
from infra.backup.records import SERVER_SCOPE as SERVER_SCOPE
from infra.backup.records import VERIFICATION_PREFIX as VERIFICATION_PREFIX
from infra.backup.records import Kind as Kind
from infra.backup.records import Manifest as Manifest
from infra.backup.records import (
    RecordError,
    read_manifest,
    read_verification,
    sign_manifest,
    sign_verification,
)
from infra.backup.records import Verification as Verification
from infra.backup.records import new_id as new_id
from infra.backup.records import parse_id as parse_id
from infra.backup.records import prefix as prefix
from infra.backup.storage import Bucket, read_bytes
from infra.errors import BackupError

MANIFEST = "manifest.json"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Entry:
    """A complete, proven backup, the folder it was read from, and its verification history."""

    manifest: Manifest
    verifications: tuple[Verification, ...]
    folder: str  # where it was read: verification records go here, never to a computed path
    newest_record_unreadable: bool = False  # a bad newest record proves nothing either way

    @property
    def state(self) -> Literal["verified", "failed", "unverified"]:
        if not self.verifications or self.newest_record_unreadable:
            return "unverified"
        return "verified" if self.verifications[-1].ok else "failed"

    @property
    def is_safety(self) -> bool:
        return self.manifest.purpose == "safety"


def write_manifest(bucket: Bucket, manifest: Manifest, key: bytes | None) -> Manifest:
    """Store the manifest (signed with the backup key, if any) in its own folder."""
    signed = sign_manifest(manifest, key)
    bucket.write(signed.prefix + MANIFEST, [signed.to_json()])
    return signed


def write_verification(
    bucket: Bucket, entry: Entry, result: Verification, key: bytes | None
) -> None:
    """Store a verification record in the folder the backup was read from, and only there."""
    signed = sign_verification(result, entry.folder, key)
    bucket.write(entry.folder + signed.leaf, [signed.to_json()])


def entries(
    bucket: Bucket,
    kind: str | None = None,
    service: str | None = None,
    *,
    key: bytes | None,
) -> list[Entry]:
    """Complete, proven backups, newest first; the others are skipped (see ``scan``)."""
    return scan(bucket, kind, service, key=key)[0]


def is_backup_folder(head: str) -> bool:
    """``<kind>/<service>/<backup id>/``: the only place a manifest can be."""
    parts = head.split("/")
    return len(parts) == 4 and parts[0] in KINDS and all(parts[1:3]) and not parts[3]


def scan(
    bucket: Bucket,
    kind: str | None = None,
    service: str | None = None,
    *,
    key: bytes | None,
    now: datetime | None = None,
) -> tuple[list[Entry], list[str]]:
    """(complete, proven backups newest first, one line per manifest or record refused).

    A manifest that is malformed, misplaced, future-dated or (with ``key``) not authentic skips
    that backup only: it is never listed, verified, restored or counted for retention. A bad
    verification record is ignored and, if it is the newest one, leaves the backup unverified.
    """
    now = now or utc_now()
    start = "" if kind is None else f"{kind}/" + ("" if service is None else f"{service}/")
    by_prefix: dict[str, list[str]] = {}
    for name in bucket.names(start):
        head, _, leaf = name.rpartition("/")
        by_prefix.setdefault(head + "/", []).append(leaf)
    found = []
    problems: list[str] = []
    for head, leaves in by_prefix.items():
        if MANIFEST not in leaves:
            continue
        where = f"{bucket.url}/{head}{MANIFEST}"
        try:
            if not is_backup_folder(head):
                raise RecordError(f"{where}: not in a <kind>/<service>/<backup id>/ folder")
            manifest = read_manifest(read_bytes(bucket, head + MANIFEST), head, where, key, now)
        except BackupError as error:
            problems.append(f"refused: {error}")
            continue
        if manifest.object not in leaves:
            continue  # data object removed (e.g. a half-finished prune): not restorable
        checks = []
        newest_unreadable = False
        for leaf in sorted(leaf for leaf in leaves if leaf.startswith(VERIFICATION_PREFIX)):
            where = f"{bucket.url}/{head}{leaf}"
            try:
                data = read_bytes(bucket, head + leaf)
                checks.append(read_verification(data, head, leaf, where, key, now))
                newest_unreadable = False
            except BackupError as error:
                problems.append(f"ignored: {error}")
                newest_unreadable = True
        found.append(Entry(manifest, tuple(checks), head, newest_unreadable))
    found.sort(key=lambda e: e.manifest.backup_id, reverse=True)
    return found, problems


def incomplete_prefixes(bucket: Bucket) -> list[str]:
    """Backup folders with objects but no manifest: interrupted runs, never restorable."""
    by_prefix: dict[str, set[str]] = {}
    for name in bucket.names():
        head, _, leaf = name.rpartition("/")
        by_prefix.setdefault(head + "/", set()).add(leaf)
    return sorted(head for head, leaves in by_prefix.items() if MANIFEST not in leaves)


def find(
    bucket: Bucket,
    kind: str,
    service: str,
    at: str | None = None,
    *,
    verified_only: bool = False,
    before: datetime | None = None,
    key: bytes | None,
    scanned: list[Entry] | None = None,
) -> Entry:
    """The newest usable backup of a service, optionally taken at or before ``at``.

    ``at`` is a backup id or an ISO 8601 time (e.g. 2026-11-22T03:00:00Z). Backups whose last
    verification failed are never chosen. Without ``at``, restore's safety backups (copies of
    a database that was about to be replaced, possibly a broken one) are never chosen either.
    ``before``: only backups started before then (``rebuild`` passes its own start, so a backup
    the rebuilt stack's backup loop takes of the still empty servers is never chosen).
    ``scanned``: the service's entries from a ``scan`` the caller already made (a scan reads
    and authenticates every manifest and record of the service).
    """
    if scanned is None:
        scanned = entries(bucket, kind, service, key=key)
    usable = [e for e in scanned if e.state != "failed"]
    if before is not None:
        usable = [e for e in usable if e.manifest.started < before]
    if at is None:
        usable = [e for e in usable if not e.is_safety]
    candidates = usable
    if verified_only:
        candidates = [e for e in candidates if e.state == "verified"]
    if at is not None:
        exact = [e for e in candidates if e.manifest.backup_id == at]
        if exact:
            return exact[0]
        try:
            moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise BackupError(
                f"--at {at!r} is neither a backup id nor an ISO 8601 time "
                "(e.g. 2026-11-22T03:00:00Z)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        candidates = [e for e in candidates if e.manifest.started <= moment]
        usable = [e for e in usable if e.manifest.started <= moment]
    if not candidates:
        when = f" at or before {at}" if at else ""
        if verified_only and usable:
            raise BackupError(
                f"no verified backup of {kind}/{service}{when} in {bucket.url}: "
                f"{len(usable)} unverified; run verify first, or name one with --at"
            )
        if verified_only:
            raise BackupError(
                f"no verified backup of {kind}/{service}{when} in {bucket.url} "
                f"(no backup of {kind}/{service} there that can be restored at all)"
            )
        raise BackupError(f"no backup of {kind}/{service}{when} in {bucket.url}")
    return candidates[0]
