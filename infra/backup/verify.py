"""``verify``: a backup counts only after it has been restored and its contents match.

The result is stored beside the backup as its own object, so ``list`` and ``restore`` can tell
verified from failed without re-running anything.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from infra import naming
from infra.backup import pg
from infra.backup.catalog import Entry, Manifest, Verification, utc_now, write_verification
from infra.backup.fetch import fetched, fetching, pg_restore
from infra.backup.redis_keys import KEYS_FORMAT, verify_keys
from infra.backup.storage import Bucket
from infra.backup.workdir import private_workdir
from infra.errors import BackupError, UsageError
from infra.postgres.driver import session
from infra.postgres.tooling import service_login


def scratch_database(service: str, suffix: str) -> str:
    """A backup tooling database next to the service's (see naming.SCRATCH_SUFFIXES)."""
    return f"{service}{suffix}"


def check_restored(login_url: str, database: str, manifest: Manifest) -> list[str]:
    """Compare a restored database with what the manifest says the backup holds.

    Counted as the service's owner role over the tool login (see infra.postgres.tooling), like
    the manifest's own counts, so row-level security filters neither.
    """
    owner = naming.owner_role(manifest.service)
    with session(login_url, database) as conn:
        pg.act_as(conn, owner)
        actual = pg.contents(conn)
    expected = pg.Contents(manifest.row_counts, manifest.sequences, manifest.large_objects)
    return pg.compare(expected, actual)


def verify(bucket: Bucket, entry: Entry, admin_url: str | None, key: bytes | None) -> Verification:
    """Checksum, restore into a scratch database, compare, drop it, record the result.

    Only the backup's own faults (checksum, decryption, restore, contents) are recorded as a
    failed verification; a missing key or an unreachable server raises and records nothing.
    The record (signed with ``key``, if any) goes to the folder the backup was read from.
    """
    manifest = entry.manifest
    started = time.monotonic()
    problems: list[str] = []
    try:
        if manifest.kind == "postgres":
            if admin_url is None:
                raise UsageError("verifying a PostgreSQL backup needs --admin-url")
            with private_workdir("verify") as work:
                problems = _verify_postgres(admin_url, manifest, bucket, work, key)
        else:
            with private_workdir("verify") as work, fetched(bucket, manifest, work, key) as dump:
                problems = _verify_other(manifest, dump)
    except BackupError as error:
        problems = [str(error)]
    result = Verification(
        backup_id=manifest.backup_id,
        checked_at=utc_now().isoformat(),
        ok=not problems,
        problems=problems,
        seconds=round(time.monotonic() - started, 3),
    )
    write_verification(bucket, entry, result, key)
    return result


def restore_checked(
    admin_url: str,
    login_url: str,
    database: str,
    dump: Callable[[], Path],
    manifest: Manifest,
) -> list[str]:
    """Create ``database`` afresh (owned by the service's owner role), restore the dump into it
    as the tool login acting as that role, and compare it with the manifest: the problems.
    ``dump`` waits for the fetch (``fetch.fetching``), which runs while the database is made."""
    owner = naming.owner_role(manifest.service)
    pg.drop_database(admin_url, database, manifest.service)
    pg.create_database(admin_url, database, manifest.service, owner=owner)
    pg_restore(login_url, database, dump(), role=owner)
    return check_restored(login_url, database, manifest)


def _verify_postgres(
    admin_url: str, manifest: Manifest, bucket: Bucket, work: Path, key: bytes | None
) -> list[str]:
    """Restore as the service's tool login into a scratch database its owner role owns."""
    scratch = scratch_database(manifest.service, naming.VERIFY_SUFFIX)
    with (
        fetching(bucket, manifest, work, key) as dump,
        service_login(admin_url, manifest.service) as login,
    ):
        try:
            return restore_checked(admin_url, login, scratch, dump, manifest)
        finally:
            pg.drop_database(admin_url, scratch, manifest.service)


def _verify_other(manifest: Manifest, dump: Path) -> list[str]:
    """A Redis snapshot or key dump, or RabbitMQ definitions: read, nothing restored."""
    if manifest.kind == "redis" and manifest.format == KEYS_FORMAT:
        return verify_keys(dump, manifest)
    if manifest.kind == "redis":
        return _verify_rdb(dump)
    return _verify_definitions(dump)


def _verify_rdb(dump: Path) -> list[str]:
    """Valkey 8.0's own checker reads the whole snapshot: its RDB version 11 and the version 10
    of the Redis 7.0 backups taken before dev moved to Valkey (Redis 7.0's checker refuses 11).
    Without the checker nothing is recorded: a snapshot no one read is not verified."""
    with dump.open("rb") as handle:
        if handle.read(5) != b"REDIS":
            return ["dump.rdb does not start with the RDB signature"]
    checker = shutil.which("valkey-check-rdb")
    if checker is None:
        raise UsageError(
            "valkey-check-rdb not found: apt-get install -t bookworm-backports valkey-tools"
        )
    result = subprocess.run([checker, str(dump)], capture_output=True, check=False, timeout=600)
    if result.returncode != 0:
        tail = result.stdout.decode(errors="replace").strip().splitlines()[-1:]
        return [f"valkey-check-rdb rejects the snapshot: {' '.join(tail)}"]
    return []


def _verify_definitions(dump: Path) -> list[str]:
    try:
        data = json.loads(dump.read_bytes())
    except ValueError as error:
        return [f"definitions.json is not JSON: {error}"]
    missing = [key for key in ("vhosts", "users", "permissions") if key not in data]
    return [f"definitions.json lacks {', '.join(missing)}"] if missing else []
