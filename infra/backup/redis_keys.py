"""Per-service Redis key backups (``DUMP`` + expiry) and their restore (``RESTORE ... ABSTTL``).

Beside the server's RDB snapshot (kept for operators and Memorystore-style imports), every
service with Redis gets its own backup ``redis/<service>/<id>/keys.jsonl``: one JSON line per key
under the service's prefix, ``{"k": key, "x": absolute expiry in Unix ms or null, "v": DUMP
payload}`` (key and payload base64). A restore puts the keys back into the *running* server,
as the admin, without a restart:

- only keys under the service's own prefix are restored; any other key in the file (a forged
  or misplaced backup) is refused and counted, never written;
- a key that already exists is kept (``RESTORE`` without ``REPLACE``): whatever an application
  wrote since the stack came back is newer than the backup;
- a key whose expiry has passed stays gone; the others keep their absolute expiry, so the
  downtime does not extend a TTL;
- ``RESTORE`` checks each payload's own RDB version and CRC64; the object as a whole was
  checked against the manifest's SHA-256 before (``infra.backup.fetch``), and the server
  sanitises payloads from clients (``sanitize-dump-payload clients`` in redis.conf).

The backup is a SCAN, not a point-in-time snapshot: each key is copied as it was when it was
read, somewhere between the backup's start and end. Recovery points count from the start.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from infra import naming
from infra.backup.catalog import Manifest, new_id, prefix, utc_now
from infra.backup.dump import Target, _finish, _store, check_redis_url, redis_server_version
from infra.errors import BackupError, ServerError
from infra.redis_client import RedisClient, RedisReplyError, Reply

KEYS_OBJECT = "keys.jsonl"
KEYS_FORMAT = "redis-keys"
BATCH = 500


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def holds_keys(client: RedisClient, service: str) -> bool:
    """Whether the server holds any key under ``service``'s prefix (a SCAN, stopping early)."""
    key_prefix = naming.redis_key_prefix(service).encode()
    return any(_scan(client, key_prefix))


def _scan(client: RedisClient, key_prefix: bytes) -> Iterator[list[bytes]]:
    """Every key under ``key_prefix``, a SCAN page at a time (pages with none are skipped)."""
    cursor = b"0"
    pattern = _glob_escape(key_prefix.decode()) + "*"
    while True:
        reply = client.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        if not isinstance(reply, list) or len(reply) != 2:
            raise ServerError(f"Redis at {client.where}: unexpected SCAN reply")
        cursor_reply, keys = reply
        if not isinstance(cursor_reply, bytes) or not isinstance(keys, list):
            raise ServerError(f"Redis at {client.where}: unexpected SCAN reply")
        wanted = [k for k in keys if isinstance(k, bytes) and k.startswith(key_prefix)]
        if wanted:
            yield wanted
        if cursor_reply == b"0":
            return
        cursor = cursor_reply


def _server_ms(client: RedisClient) -> int:
    reply = client.call("TIME")
    assert isinstance(reply, list)
    seconds, micros = (int(item) for item in reply if isinstance(item, bytes))
    return seconds * 1000 + micros // 1000


def _lines(client: RedisClient, key_prefix: bytes, counted: list[int]) -> Iterator[bytes]:
    """Each key under ``key_prefix`` as one JSON line; ``counted[0]`` counts them."""
    for wanted in _scan(client, key_prefix):
        for start in range(0, len(wanted), BATCH):
            batch = wanted[start : start + BATCH]
            commands: list[list[bytes | str | int]] = [["TIME"]]
            for key in batch:
                commands += [["DUMP", key], ["PTTL", key]]
            replies = client.pipeline(commands)
            now = replies[0]
            assert isinstance(now, list)
            now_ms = int(now[0]) * 1000 + int(now[1]) // 1000  # type: ignore[arg-type]
            for index, key in enumerate(batch):
                payload, ttl = replies[1 + 2 * index], replies[2 + 2 * index]
                if isinstance(payload, RedisReplyError):
                    raise BackupError(f"DUMP failed: {payload}")
                if payload is None or not isinstance(ttl, int) or ttl == -2:
                    continue  # deleted or expired between SCAN and DUMP
                assert isinstance(payload, bytes)
                record = {
                    "k": base64.b64encode(key).decode(),
                    "x": None if ttl < 0 else now_ms + ttl,
                    "v": base64.b64encode(payload).decode(),
                }
                counted[0] += 1
                yield json.dumps(record, separators=(",", ":")).encode() + b"\n"


def backup_keys(target: Target, redis_url: str, user: str, password: str, service: str) -> Manifest:
    """Copy every key under ``service``'s prefix into ``redis/<service>/<id>/keys.jsonl``."""
    check_redis_url(redis_url)
    started = utc_now()
    backup_id = new_id(started)
    name = prefix("redis", service, backup_id) + KEYS_OBJECT
    counted = [0]
    with RedisClient(redis_url, user, password) as client:
        info = client.call("INFO", "server")
        version = "unknown"
        if isinstance(info, bytes):
            version = redis_server_version(info.decode(errors="replace"))
        key_prefix = naming.redis_key_prefix(service).encode()
        hashed = _store(target, name, _lines(client, key_prefix, counted), f"redis/{service}")
    return _finish(
        target,
        "redis",
        backup_id,
        KEYS_OBJECT,
        KEYS_FORMAT,
        started,
        hashed,
        version,
        "SCAN+DUMP",
        service=service,
        database=naming.redis_key_prefix(service),
        row_counts={"keys": counted[0]},
    )


@dataclass(frozen=True)
class Record:
    key: bytes
    expires_ms: int | None
    payload: bytes


def read_records(path: Path, manifest: Manifest) -> tuple[list[Record], list[str]]:
    """The records of a fetched (checksum-checked) key backup; problems with its structure."""
    problems: list[str] = []
    records: list[Record] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                raw = json.loads(line)
                key = base64.b64decode(raw["k"], validate=True)
                payload = base64.b64decode(raw["v"], validate=True)
                expires = raw["x"]
                if expires is not None and (
                    isinstance(expires, bool) or not isinstance(expires, int)
                ):
                    raise TypeError("expiry is not an integer")
            except (ValueError, KeyError, TypeError, binascii.Error) as error:
                problems.append(
                    f"{manifest.prefix}{KEYS_OBJECT} line {number}: not a key ({error})"
                )
                continue
            records.append(Record(key, expires, payload))
    expected = manifest.row_counts.get("keys")
    if not problems and expected != len(records):
        problems.append(
            f"{manifest.prefix}{KEYS_OBJECT} holds {len(records)} keys, "
            f"its manifest says {expected}"
        )
    return records, problems


def verify_keys(path: Path, manifest: Manifest) -> list[str]:
    """A key backup is sound when every line parses, every key is the service's own, and the
    count matches the manifest."""
    records, problems = read_records(path, manifest)
    key_prefix = naming.redis_key_prefix(manifest.service).encode()
    outside = [r.key for r in records if not r.key.startswith(key_prefix)]
    if outside:
        problems.append(
            f"{len(outside)} keys outside {manifest.service}'s prefix "
            f"{naming.redis_key_prefix(manifest.service)!r} (e.g. {outside[0][:60]!r})"
        )
    return problems


@dataclass
class KeysRestored:
    """What one service's key restore did."""

    restored: int = 0
    kept: int = 0  # already there: the application's newer value wins
    expired: int = 0
    refused: int = 0  # outside the service's prefix: never written
    rejected: list[str] = field(default_factory=list)  # payloads the server refused


def restore_keys(client: RedisClient, path: Path, manifest: Manifest, service: str) -> KeysRestored:
    """Put ``service``'s keys from a fetched backup back into the server ``client`` is on."""
    if manifest.kind != "redis" or manifest.format != KEYS_FORMAT or manifest.service != service:
        raise BackupError(
            f"{manifest.prefix} is not a Redis key backup of {service} "
            f"({manifest.kind}/{manifest.service}, format {manifest.format}): refusing it"
        )
    records, problems = read_records(path, manifest)
    if problems:
        raise BackupError("; ".join(problems[:3]))
    key_prefix = naming.redis_key_prefix(service).encode()
    result = KeysRestored()
    wanted: list[Record] = []
    for record in records:
        if record.key.startswith(key_prefix):
            wanted.append(record)
        else:
            result.refused += 1
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start : start + BATCH]
        now_ms = _server_ms(client)
        live = [r for r in batch if r.expires_ms is None or r.expires_ms > now_ms + 1]
        result.expired += len(batch) - len(live)
        commands: list[list[bytes | str | int]] = [
            ["RESTORE", r.key, r.expires_ms or 0, r.payload, "ABSTTL"] for r in live
        ]
        replies: list[Reply | RedisReplyError] = client.pipeline(commands) if commands else []
        for record, reply in zip(live, replies, strict=True):
            if not isinstance(reply, RedisReplyError):
                result.restored += 1
            elif str(reply).startswith("BUSYKEY"):
                result.kept += 1
            else:
                result.rejected.append(f"{record.key[:60]!r}: {reply}")
    return result
