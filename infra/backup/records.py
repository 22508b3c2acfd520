"""Backup manifests and verification records, and the proof that one read back is genuine.

Nothing read from a bucket is trusted as it is: every field is type-checked (a malformed record
skips that backup only, with one line), the record is bound to the folder it was read from
(kind, service and backup id are the path's), its start time is the one its id encodes, it is
not dated in the future, and, with a backup key, its MAC (``mac``: HMAC-SHA256 under a subkey
of the backup key) covers every field and that path. A record that fails any of this raises
``RecordError`` and is never restored, verified, recorded against, or counted for retention.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from infra.backup import crypto
from infra.errors import BackupError

Kind = Literal["postgres", "redis", "rabbitmq"]
KINDS: tuple[Kind, ...] = ("postgres", "redis", "rabbitmq")
SERVER_SCOPE = "server"  # the "service" of Redis and RabbitMQ backups: the whole server
ID_FORMAT = "%Y%m%dT%H%M%S.%fZ"
VERIFICATION_PREFIX = "verification-"
FUTURE_TOLERANCE = timedelta(minutes=5)  # clock skew between the writer and the reader
# (kind, format) -> the data object's name: the only pairs a backup can be.
OBJECTS: dict[tuple[str, str], str] = {
    ("postgres", "custom"): "dump.pgcustom",
    ("postgres", "directory"): "dump.pgdir.tar",
    ("redis", "rdb"): "dump.rdb",
    ("redis", "redis-keys"): "keys.jsonl",
    ("rabbitmq", "definitions-json"): "definitions.json",
}
SERVER_FORMATS = frozenset({"rdb", "definitions-json"})  # whole-server backups
PURPOSES = ("", "safety")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX16 = re.compile(r"[0-9a-f]{16}")


class RecordError(BackupError):
    """A manifest or verification record that is malformed, misplaced or not authentic."""


def new_id(now: datetime) -> str:
    """A unique, sortable backup id from the UTC start time (microseconds keep it unique)."""
    return now.astimezone(UTC).strftime(ID_FORMAT)


def parse_id(backup_id: str) -> datetime:
    return datetime.strptime(backup_id, ID_FORMAT).replace(tzinfo=UTC)


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
    mac: str | None = None  # HMAC over every other field and the folder (with a backup key)

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


@dataclass(frozen=True)
class Verification:
    """The outcome of one ``verify`` run, stored beside the backup."""

    backup_id: str
    checked_at: str
    ok: bool
    problems: list[str]
    seconds: float
    mac: str | None = None  # HMAC over every other field and the record's object name

    @property
    def leaf(self) -> str:
        """The record's object name in its folder: one per check time."""
        return f"{VERIFICATION_PREFIX}{new_id(datetime.fromisoformat(self.checked_at))}.json"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()


def _canonical(record: Manifest | Verification, where: str) -> bytes:
    """The bytes a MAC covers: the record's type, every field but ``mac``, and its path."""
    body = {k: v for k, v in asdict(record).items() if k != "mac"}
    document = {"record": type(record).__name__, "path": where, "fields": body}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def sign_manifest(manifest: Manifest, key: bytes | None) -> Manifest:
    """The manifest with its MAC (bound to its own folder); unchanged without a key."""
    if key is None:
        return manifest
    unsigned = _replace_mac(manifest, None)
    return _replace_mac(unsigned, crypto.mac(key, _canonical(unsigned, unsigned.prefix)))


def sign_verification(record: Verification, folder: str, key: bytes | None) -> Verification:
    """The record with its MAC, bound to ``folder`` + its own name; unchanged without a key."""
    if key is None:
        return record
    body = Verification(**{**asdict(record), "mac": None})
    return Verification(
        **{**asdict(body), "mac": crypto.mac(key, _canonical(body, folder + body.leaf))}
    )


def _replace_mac(manifest: Manifest, value: str | None) -> Manifest:
    return Manifest(**{**asdict(manifest), "mac": value})


# --- reading -------------------------------------------------------------------------------

Check = Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return _is_int(value) and value >= 0


def _is_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _is_counts(check: Check) -> Check:
    return lambda v: (
        isinstance(v, dict) and all(isinstance(k, str) and check(n) for k, n in v.items())
    )


def _optional(pattern: re.Pattern[str]) -> Check:
    return lambda v: v is None or (isinstance(v, str) and pattern.fullmatch(v) is not None)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


MANIFEST_FIELDS: dict[str, tuple[Check, str]] = {
    "kind": (lambda v: v in KINDS, f"one of {', '.join(KINDS)}"),
    "service": (
        lambda v: isinstance(v, str) and bool(v) and "/" not in v,
        "a service name (or 'server')",
    ),
    "backup_id": (_is_str, "a backup id like 20261122T030000.000000Z"),
    "object": (_is_str, "the data object's name"),
    "format": (_is_str, "a backup format"),
    "started_at": (_is_time, "an ISO 8601 time with its time zone"),
    "finished_at": (_is_time, "an ISO 8601 time with its time zone"),
    "size": (_is_count, "a whole number of bytes"),
    "sha256": (lambda v: isinstance(v, str) and _HEX64.fullmatch(v) is not None, "64 hex digits"),
    "server_version": (_is_str, "a string"),
    "database": (_is_str, "a string"),
    "row_counts": (_is_counts(_is_count), "an object of whole numbers"),
    "sequences": (_is_counts(_is_int), "an object of whole numbers"),
    "large_objects": (_is_count, "a whole number"),
    "encrypted": (lambda v: isinstance(v, bool), "true or false"),
    "key_id": (_optional(_HEX16), "null or 16 hex digits"),
    "tool": (_is_str, "a string"),
    "purpose": (lambda v: v in PURPOSES, "'' or 'safety'"),
    "mac": (_optional(_HEX64), "null or 64 hex digits"),
}
VERIFICATION_FIELDS: dict[str, tuple[Check, str]] = {
    "backup_id": (_is_str, "a backup id"),
    "checked_at": (_is_time, "an ISO 8601 time with its time zone"),
    "ok": (lambda v: isinstance(v, bool), "true or false"),
    "problems": (lambda v: isinstance(v, list) and all(map(_is_str, v)), "a list of strings"),
    "seconds": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= 0,
        "a number of seconds",
    ),
    "mac": (_optional(_HEX64), "null or 64 hex digits"),
}


def _fields(data: bytes, where: str, table: dict[str, tuple[Check, str]], cls: type) -> Any:
    """The JSON object in ``data`` with every field checked against ``table``."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise RecordError(f"{where}: not JSON ({error})") from None
    if not isinstance(raw, dict):
        raise RecordError(f"{where}: not a JSON object")
    required = {
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    }
    missing = sorted(required - set(raw))
    if missing:
        raise RecordError(f"{where}: lacks {', '.join(missing)}")
    unknown = sorted(set(raw) - set(table))
    if unknown:
        raise RecordError(f"{where}: unknown field {unknown[0]!r}")
    for name, value in raw.items():
        check, allowed = table[name]
        if not check(value):
            raise RecordError(f"{where}: {name} is {_show(value)}; it must be {allowed}")
    return cls(**raw)


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_manifest(
    data: bytes, folder: str, where: str, key: bytes | None, now: datetime
) -> Manifest:
    """The manifest read from ``folder`` (``<kind>/<service>/<backup id>/``), or RecordError."""
    manifest: Manifest = _fields(data, where, MANIFEST_FIELDS, Manifest)
    if manifest.prefix != folder:
        raise RecordError(
            f"{where}: says it is {manifest.prefix} but sits in {folder}: a copied or "
            "relabelled backup is never used"
        )
    expected = OBJECTS.get((manifest.kind, manifest.format))
    if expected is None:
        allowed = ", ".join(f for k, f in OBJECTS if k == manifest.kind)
        raise RecordError(f"{where}: format {manifest.format!r}; {manifest.kind} has {allowed}")
    if manifest.object != expected:
        raise RecordError(
            f"{where}: object {manifest.object!r}; format {manifest.format} is {expected!r}"
        )
    if (manifest.format in SERVER_FORMATS) != (manifest.service == SERVER_SCOPE):
        raise RecordError(
            f"{where}: format {manifest.format} does not fit service {manifest.service!r}"
        )
    try:
        started = parse_id(manifest.backup_id)
    except ValueError:
        raise RecordError(f"{where}: backup id {manifest.backup_id!r} is not a time") from None
    if manifest.started != started:
        raise RecordError(
            f"{where}: started_at {manifest.started_at} is not the time its id "
            f"{manifest.backup_id} encodes"
        )
    if manifest.finished < started:
        raise RecordError(f"{where}: finished_at is before started_at")
    if max(started, manifest.finished) > now + FUTURE_TOLERANCE:
        raise RecordError(f"{where}: dated {manifest.finished_at}, in the future: not counted")
    if manifest.encrypted != (manifest.key_id is not None):
        raise RecordError(f"{where}: encrypted and key_id disagree")
    if key is not None:
        _authenticate_manifest(manifest, folder, where, key)
    return manifest


def _authenticate_manifest(manifest: Manifest, folder: str, where: str, key: bytes) -> None:
    ours = crypto.key_id(key)
    if not manifest.encrypted:
        raise RecordError(
            f"{where}: not encrypted, but a backup key is set: a plaintext backup is refused"
        )
    if manifest.key_id != ours:
        raise RecordError(
            f"{where}: written with backup key {manifest.key_id}, this key is {ours}: "
            "set the key it was written with"
        )
    if manifest.mac is None or not crypto.mac_matches(
        key, _canonical(_replace_mac(manifest, None), folder), manifest.mac
    ):
        raise RecordError(
            f"{where}: fails authentication (no MAC, or one this key did not make for this "
            "folder): forged, relabelled or replayed"
        )


def read_verification(
    data: bytes, folder: str, leaf: str, where: str, key: bytes | None, now: datetime
) -> Verification:
    """A verification record read as ``folder + leaf``, or RecordError."""
    record: Verification = _fields(data, where, VERIFICATION_FIELDS, Verification)
    if folder.rstrip("/").rsplit("/", 1)[-1] != record.backup_id:
        raise RecordError(f"{where}: names backup {record.backup_id}, not its folder's")
    if record.leaf != leaf:
        raise RecordError(f"{where}: checked_at {record.checked_at} does not match its name")
    if datetime.fromisoformat(record.checked_at) > now + FUTURE_TOLERANCE:
        raise RecordError(f"{where}: dated {record.checked_at}, in the future")
    if key is not None:
        body = Verification(**{**asdict(record), "mac": None})
        if record.mac is None or not crypto.mac_matches(
            key, _canonical(body, folder + leaf), record.mac
        ):
            raise RecordError(
                f"{where}: fails authentication (no MAC, or one this key did not make for "
                "this object)"
            )
    return record
