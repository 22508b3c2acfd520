"""Taking backups: a streamed pg_dump per service database, a Redis RDB, RabbitMQ definitions.

The database dump runs inside a snapshot exported by the admin's transaction, so the row counts
recorded in the manifest describe exactly the data in the dump. The manifest is written last.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import ParseResult, urlparse

from infra import naming
from infra.backup import crypto, pg
from infra.backup.catalog import (
    SERVER_SCOPE,
    Kind,
    Manifest,
    new_id,
    prefix,
    utc_now,
    write_manifest,
)
from infra.backup.hashing import Hashed
from infra.backup.progress import track
from infra.backup.storage import CHUNK_BYTES, Bucket
from infra.backup.workdir import private_workdir
from infra.broker.management import ManagementApi
from infra.errors import BackupError, ServerError
from infra.postgres.driver import lock_timeout_ms, session
from infra.postgres.tooling import service_login

DUMP_OBJECT = "dump.pgcustom"
DUMP_DIR_OBJECT = "dump.pgdir.tar"


@dataclass(frozen=True)
class Target:
    """Where backups go and how they are sealed."""

    bucket: Bucket
    key: bytes | None


def _stream_file(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK_BYTES):
        yield chunk


def _store(target: Target, name: str, plain: Iterable[bytes], label: str) -> Hashed:
    """Encrypt (if keyed), hash the stored bytes, and stream them into a new object."""
    sealed = plain if target.key is None else crypto.encrypt(plain, target.key, name)
    hashed = Hashed(track(sealed, label))
    target.bucket.write(name, hashed)
    return hashed


def _stderr_tail(handle: IO[bytes]) -> str:
    handle.seek(0)
    lines = handle.read().decode(errors="replace").strip().splitlines()
    return " | ".join(lines[-3:]) or "no message"


def backup_postgres(
    target: Target,
    admin_url: str,
    service: str,
    dump_format: str,
    *,
    purpose: str = "",
    database: str | None = None,
    source: str | None = None,
) -> Manifest:
    """Dump one service database and record what it holds (``purpose="safety"``: a database a
    restore replaced, dumped from ``database`` and recorded as ``source``; never chosen by a
    restore without --at).

    Dumped and counted as the service's tool login acting as its owner role, never as the
    admin (see infra.postgres.tooling).
    """
    database = database or naming.database_name(service)
    owner = naming.owner_role(service)
    started = utc_now()
    backup_id = new_id(started)
    object_name = DUMP_OBJECT if dump_format == "custom" else DUMP_DIR_OBJECT
    name = prefix("postgres", service, backup_id) + object_name
    with service_login(admin_url, service) as login, session(login, database) as conn:
        pg.act_as(conn, owner)
        conn.execute(pg.statement("snapshot"))
        row = pg.fetch_one(conn, "export_snapshot")
        snapshot = str(row[0]) if row else ""
        version = pg.server_version(conn)
        found = pg.contents(conn)
        argv = [
            pg.binary("pg_dump"),
            "--no-owner",
            "--no-privileges",
            f"--role={owner}",
            f"--snapshot={snapshot}",
            f"--lock-wait-timeout={lock_timeout_ms()}",
        ]
        with (
            private_workdir("pgdump") as work,
            (work / "stderr").open("w+b") as errors,
        ):
            if dump_format == "custom":
                hashed = _dump_custom(target, argv, login, database, name, errors, service)
            else:
                hashed = _dump_directory(target, argv, login, database, name, errors, service, work)
        conn.rollback()
    return _finish(
        target,
        "postgres",
        backup_id,
        object_name,
        dump_format,
        started,
        hashed,
        version,
        "pg_dump",
        service=service,
        database=source or database,
        row_counts=found.row_counts,
        sequences=found.sequences,
        large_objects=found.large_objects,
        purpose=purpose,
    )


def _dump_custom(
    target: Target,
    argv: list[str],
    admin_url: str,
    database: str,
    name: str,
    errors: IO[bytes],
    service: str,
) -> Hashed:
    process = subprocess.Popen(
        [*argv, "--format=custom"],
        stdout=subprocess.PIPE,
        stderr=errors,
        env=pg.libpq_environment(admin_url, database),
    )
    try:
        assert process.stdout is not None
        hashed = _store(
            target,
            name,
            _checked(_stream_file(process.stdout), process, errors),
            f"postgres/{service}",
        )
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    return hashed


def _checked(
    chunks: Iterable[bytes], process: subprocess.Popen[bytes], errors: IO[bytes]
) -> Iterator[bytes]:
    """Fail the upload (so no object appears) if pg_dump did not finish cleanly."""
    yield from chunks
    if process.wait() != 0:
        raise BackupError(f"pg_dump failed: {_stderr_tail(errors)}")


def _dump_directory(
    target: Target,
    argv: list[str],
    admin_url: str,
    database: str,
    name: str,
    errors: IO[bytes],
    service: str,
    work: Path,
) -> Hashed:
    """Directory format dumps in parallel into a private temp dir, then ships it as one tar."""
    out = work / "dump"
    result = subprocess.run(
        [*argv, "--format=directory", "--jobs=2", f"--file={out}"],
        stderr=errors,
        env=pg.libpq_environment(admin_url, database),
        check=False,
    )
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {_stderr_tail(errors)}")
    archive = work / "dump.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(out, arcname="dump")
    with archive.open("rb") as handle:
        return _store(target, name, _stream_file(handle), f"postgres/{service}")


def check_redis_url(redis_url: str) -> ParseResult:
    """``redis://HOST:PORT`` only: the admin password must not ride on the command line."""
    parsed = urlparse(redis_url)
    if parsed.password:  # refused without echoing it
        raise BackupError(
            "--redis-url must not contain a password: use redis://HOST:PORT (the admin password "
            "comes from the secrets file, never the command line)"
        )
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise BackupError(
            f"--redis-url {redis_url!r}: use redis://HOST:PORT (the admin password comes from "
            "the secrets file, never the command line)"
        )
    return parsed


def redis_server_version(info: str) -> str:
    """The server's version from ``INFO server``: Valkey's own (``valkey_version``), not the
    Redis version it reports for compatibility (Valkey 8.0 says ``redis_version:7.2.4``);
    ``redis_version`` for a Redis server."""
    fields = dict(
        line.split(":", 1) for line in info.splitlines() if ":" in line and line[0] != "#"
    )
    found = fields.get("valkey_version") or fields.get("redis_version")
    return found.strip() if found else "unknown"


def backup_redis(target: Target, redis_url: str, user: str, password: str) -> Manifest:
    """An RDB snapshot over the replication protocol, as the admin (REDISCLI_AUTH env)."""
    cli = shutil.which("valkey-cli")
    if cli is None:
        raise BackupError(
            "valkey-cli not found: apt-get install -t bookworm-backports valkey-tools"
        )
    parsed = check_redis_url(redis_url)
    host = parsed.hostname or ""
    started = utc_now()
    backup_id = new_id(started)
    name = prefix("redis", SERVER_SCOPE, backup_id) + "dump.rdb"
    env = {**os.environ, "REDISCLI_AUTH": password}
    with private_workdir("redis") as work:
        rdb = work / "dump.rdb"
        connection = [
            cli,
            "-h",
            host,
            "-p",
            str(parsed.port or 6379),
            "--user",
            user,
            "--no-auth-warning",
            *(["--tls"] if parsed.scheme == "rediss" else []),
        ]
        argv = [*connection, "--rdb", str(rdb)]
        result = subprocess.run(argv, env=env, capture_output=True, check=False, timeout=3600)
        if result.returncode != 0 or not rdb.exists():
            message = (result.stderr or result.stdout).decode(errors="replace").strip()
            raise ServerError(
                f"Redis snapshot from {parsed.hostname}:{parsed.port} failed: "
                f"{message.splitlines()[-1] if message else 'no output'}"
            )
        info = subprocess.run(
            [*connection, "INFO", "server"],
            env=env,
            capture_output=True,
            check=False,
            timeout=60,
        )
        version = redis_server_version(info.stdout.decode(errors="replace"))
        with rdb.open("rb") as handle:
            hashed = _store(target, name, _stream_file(handle), "redis")
    return _finish(
        target, "redis", backup_id, "dump.rdb", "rdb", started, hashed, version, "valkey-cli --rdb"
    )


def backup_rabbitmq(target: Target, api: ManagementApi) -> Manifest:
    """The broker's definitions (vhosts, users, queues, bindings, policies) from the HTTP API."""
    started = utc_now()
    backup_id = new_id(started)
    name = prefix("rabbitmq", SERVER_SCOPE, backup_id) + "definitions.json"
    body = api.get_bytes("/api/definitions")
    version = api.version()
    hashed = _store(target, name, [body], "rabbitmq")
    return _finish(
        target,
        "rabbitmq",
        backup_id,
        "definitions.json",
        "definitions-json",
        started,
        hashed,
        version,
        "GET /api/definitions",
    )


def _finish(
    target: Target,
    kind: Kind,
    backup_id: str,
    object_name: str,
    fmt: str,
    started: datetime,
    hashed: Hashed,
    version: str,
    tool: str,
    service: str = SERVER_SCOPE,
    **details: Any,
) -> Manifest:
    """Write the manifest (signed with the key, if any), last: only now does the backup exist
    for list, verify and restore."""
    manifest = Manifest(
        kind=kind,
        service=service,
        backup_id=backup_id,
        object=object_name,
        format=fmt,
        started_at=started.isoformat(),
        finished_at=utc_now().isoformat(),
        size=hashed.size,
        sha256=hashed.hexdigest(),
        server_version=version,
        encrypted=target.key is not None,
        key_id=None if target.key is None else crypto.key_id(target.key),
        tool=tool,
        **details,
    )
    return write_manifest(target.bucket, manifest, target.key)
