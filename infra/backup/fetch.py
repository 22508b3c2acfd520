"""Bringing a backup back: checksum first, then decrypt, then pg_restore.

Nothing is restored from an object whose SHA-256 or size differs from its manifest: the whole
object is hashed before pg_restore sees a byte.
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

from infra.backup import crypto, pg
from infra.backup.catalog import Manifest
from infra.backup.lock_watch import bounded_lock_waits
from infra.backup.progress import track
from infra.backup.storage import CHUNK_BYTES, Bucket
from infra.errors import BackupError, FileError, ServerError, UsageError
from infra.postgres import driver

# libpq's words for a session the server or the network cut off: not the archive's fault.
CONNECTION_LOST = (
    "could not connect",
    "connection to server",
    "server closed the connection",
    "terminating connection",
    "no connection to the server",
    "the database system is shutting down",
    "the database system is starting up",
    "could not receive data from server",
    "could not send data to server",
    "connection refused",
    "ssl syscall",
)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def fetch(bucket: Bucket, manifest: Manifest, work: Path, key: bytes | None) -> Path:
    """Download, check the checksum, decrypt; returns the plaintext dump (file or directory).

    ``manifest`` comes from ``catalog.scan``, which proved it belongs to its folder (and, with
    ``key``, that it is authentic and encrypted); the object is decrypted under its own name.
    A full or unwritable scratch folder is this machine's problem, not the backup's: one line
    naming the folder (a FileError, never recorded against the backup).
    """
    if key is not None and not manifest.encrypted:
        raise BackupError(
            f"{bucket.url}/{manifest.object_name} is not encrypted, but a backup key is set: "
            "a plaintext backup is refused"
        )
    if manifest.encrypted:
        if key is None:
            raise UsageError(
                f"{manifest.prefix} is encrypted: set {crypto.KEY_ENV} or {crypto.KEY_FILE_ENV}"
            )
        if crypto.key_id(key) != manifest.key_id:
            raise UsageError(
                f"{manifest.prefix} was encrypted with key {manifest.key_id}; "
                f"the backup key is {crypto.key_id(key)}"
            )
    try:
        return _fetch(bucket, manifest, work, key)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise FileError(
            f"cannot fetch {bucket.url}/{manifest.object_name} into {work}: {reason}; free "
            "space there or point TMPDIR at a larger folder"
        ) from None


def _fetch(bucket: Bucket, manifest: Manifest, work: Path, key: bytes | None) -> Path:
    stored = work / "stored"
    digest = hashlib.sha256()
    size = 0
    with stored.open("wb") as handle:
        for chunk in track(bucket.read(manifest.object_name), f"fetch {manifest.prefix}"):
            digest.update(chunk)
            size += len(chunk)
            handle.write(chunk)
    if size != manifest.size or digest.hexdigest() != manifest.sha256:
        raise BackupError(
            f"{bucket.url}/{manifest.object_name} fails its checksum (size {size}, manifest "
            f"{manifest.size}; sha256 {digest.hexdigest()[:16]}..., manifest "
            f"{manifest.sha256[:16]}...): refusing to use it"
        )
    plain = stored
    if key is not None:  # checked above: with a key, the object is encrypted
        plain = work / "plain"
        with plain.open("wb") as handle:
            for chunk in crypto.decrypt(_chunks(stored), key, manifest.object_name):
                handle.write(chunk)
        stored.unlink()
    if manifest.format == "directory":
        with tarfile.open(plain) as tar:
            tar.extractall(work / "unpacked", filter="data")
        plain.unlink()
        return work / "unpacked" / "dump"
    return plain


def pg_restore(
    admin_url: str, database: str, dump: Path, *, role: str | None = None, jobs: int = 2
) -> None:
    """Restore without owners or grants from the dump: the role model decides those."""
    argv = [
        pg.binary("pg_restore"),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        f"--jobs={jobs}",
        f"--dbname={database}",
    ]
    if role is not None:
        argv.append(f"--role={role}")
    env = pg.libpq_environment(admin_url, database)
    with bounded_lock_waits(admin_url, database) as watch:
        env["PGAPPNAME"] = watch.application_name
        result = subprocess.run([*argv, str(dump)], env=env, capture_output=True, check=False)
    if result.returncode != 0:
        text = result.stderr.decode(errors="replace").strip()
        cause = first_error(text)
        if watch.cancelled:
            raise ServerError(
                driver.lock_wait_hint(f"pg_restore into {database}")
                + "; not the backup's fault: nothing was recorded against it"
            )
        if any(words in text.lower() for words in CONNECTION_LOST):
            raise ServerError(
                f"pg_restore into {database} was cut off by the server or the network "
                f"({cause}); that is not the backup's fault: nothing was recorded against it"
            )
        raise BackupError(f"pg_restore into {database} failed: {cause}")


def first_error(stderr: str) -> str:
    """pg_restore's first ``error:`` line: the cause. What follows is its detail, the failed
    command's text, and (with --jobs) "a worker process died unexpectedly", never the cause."""
    lines = stderr.splitlines()
    for line in lines:
        if line.startswith("pg_restore: error:"):
            return " ".join(line.removeprefix("pg_restore: error:").split())
    return " | ".join(lines[-3:]) or "no error output"
