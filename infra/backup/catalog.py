"""Where backup objects live in a bucket, their manifests, and what counts as restorable.

Layout: ``<kind>/<service>/<backup id>/`` holding the data object, ``manifest.json`` (written
last: without it the backup is incomplete and never listed) and one
``verification-<time>.json`` per verify run (new objects, since buckets never overwrite).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from infra.backup.storage import Bucket, read_bytes
from infra.errors import BackupError

Kind = Literal["postgres", "redis", "rabbitmq"]
KINDS: tuple[Kind, ...] = ("postgres", "redis", "rabbitmq")
SERVER_SCOPE = "server"  # the "service" of Redis and RabbitMQ backups: the whole server
MANIFEST = "manifest.json"
VERIFICATION_PREFIX = "verification-"
ID_FORMAT = "%Y%m%dT%H%M%S.%fZ"


def new_id(now: datetime) -> str:
    """A unique, sortable backup id from the UTC start time (microseconds keep it unique)."""
    return now.astimezone(UTC).strftime(ID_FORMAT)


def parse_id(backup_id: str) -> datetime:
    return datetime.strptime(backup_id, ID_FORMAT).replace(tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def prefix(kind: str, service: str, backup_id: str) -> str:
    return f"{kind}/{service}/{backup_id}/"


@dataclass(frozen=True)
class Manifest:
    """Everything needed to trust, verify and restore one backup."""

    kind: Kind
    service: str
    backup_id: str
    object: str
    format: str
    started_at: str
    finished_at: str
    size: int
    sha256: str
    server_version: str
    database: str = ""
    row_counts: dict[str, int] = field(default_factory=dict)
    sequences: dict[str, int] = field(default_factory=dict)
    large_objects: int = 0
    encrypted: bool = False
    key_id: str | None = None
    tool: str = ""
    purpose: str = ""  # "safety": taken by restore before a swap, never a default choice

    @property
    def prefix(self) -> str:
        return prefix(self.kind, self.service, self.backup_id)

    @property
    def object_name(self) -> str:
        return self.prefix + self.object

    @property
    def finished(self) -> datetime:
        return datetime.fromisoformat(self.finished_at)

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(self.started_at)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        try:
            raw: dict[str, Any] = json.loads(data)
            return cls(**raw)
        except (ValueError, TypeError) as error:
            raise BackupError(f"{where} is not a valid backup manifest: {error}") from None


@dataclass(frozen=True)
class Verification:
    """The outcome of one ``verify`` run, stored beside the backup."""

    backup_id: str
    checked_at: str
    ok: bool
    problems: list[str]
    seconds: float

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()


@dataclass(frozen=True)
class Entry:
    """A complete backup and its verification history."""

    manifest: Manifest
    verifications: tuple[Verification, ...]
    newest_record_unreadable: bool = False  # a corrupt newest record proves nothing either way

    @property
    def state(self) -> Literal["verified", "failed", "unverified"]:
        if not self.verifications or self.newest_record_unreadable:
            return "unverified"
        return "verified" if self.verifications[-1].ok else "failed"

    @property
    def is_safety(self) -> bool:
        return self.manifest.purpose == "safety"


def write_manifest(bucket: Bucket, manifest: Manifest) -> None:
    bucket.write(manifest.prefix + MANIFEST, [manifest.to_json()])


def write_verification(bucket: Bucket, manifest: Manifest, result: Verification) -> None:
    stamp = new_id(datetime.fromisoformat(result.checked_at))
    bucket.write(f"{manifest.prefix}{VERIFICATION_PREFIX}{stamp}.json", [result.to_json()])


def entries(bucket: Bucket, kind: str | None = None, service: str | None = None) -> list[Entry]:
    """Complete backups (those with a manifest), newest first; unreadable ones are skipped."""
    return scan(bucket, kind, service)[0]


def scan(
    bucket: Bucket, kind: str | None = None, service: str | None = None
) -> tuple[list[Entry], list[str]]:
    """(complete backups newest first, one line per manifest or record that cannot be read).

    A corrupt ``manifest.json`` skips that backup only; a corrupt verification record is
    reported and, if it is the newest one, leaves the backup unverified (verify it again).
    """
    start = "" if kind is None else f"{kind}/" + ("" if service is None else f"{service}/")
    names = bucket.names(start)
    by_prefix: dict[str, list[str]] = {}
    for name in names:
        head, _, leaf = name.rpartition("/")
        by_prefix.setdefault(head + "/", []).append(leaf)
    found = []
    problems: list[str] = []
    for head, leaves in by_prefix.items():
        if MANIFEST not in leaves:
            continue
        try:
            manifest = Manifest.from_json(
                read_bytes(bucket, head + MANIFEST), bucket.url + "/" + head + MANIFEST
            )
        except BackupError as error:
            problems.append(f"skipped: {error}")
            continue
        if manifest.object not in leaves:
            continue  # data object removed (e.g. a half-finished prune): not restorable
        checks = []
        newest_unreadable = False
        for leaf in sorted(leaf for leaf in leaves if leaf.startswith(VERIFICATION_PREFIX)):
            try:
                raw = json.loads(read_bytes(bucket, head + leaf))
                checks.append(Verification(**raw))
                newest_unreadable = False
            except (ValueError, TypeError) as error:
                problems.append(
                    f"ignored: {bucket.url}/{head}{leaf} is not a valid verification record "
                    f"({error})"
                )
                newest_unreadable = True
        checks.sort(key=lambda v: v.checked_at)
        found.append(Entry(manifest, tuple(checks), newest_unreadable))
    found.sort(key=lambda e: (e.manifest.started_at, e.manifest.backup_id), reverse=True)
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
) -> Entry:
    """The newest usable backup of a service, optionally taken at or before ``at``.

    ``at`` is a backup id or an ISO 8601 time (e.g. 2026-11-22T03:00:00Z). Backups whose last
    verification failed are never chosen. Without ``at``, restore's safety backups (copies of
    a database that was about to be replaced, possibly a broken one) are never chosen either.
    ``before``: only backups started before then (``rebuild`` passes its own start, so a backup
    the rebuilt stack's backup loop takes of the still empty servers is never chosen).
    """
    usable = [e for e in entries(bucket, kind, service) if e.state != "failed"]
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
