"""Bringing a backup back: checksum first, then decrypt, then pg_restore.

Nothing is restored from an object whose SHA-256 or size differs from its manifest: the whole
object is hashed before pg_restore sees a byte.

An object of a ``file://`` bucket is not copied (``fetched``): it is opened once, hashed
through that descriptor, and pg_restore reads the very same open file (``/dev/fd/N``), so a
file renamed over it in between is never read. Its inode's change time (which every write and
every ``utime`` moves, and no one can set back) is compared once more after use: an object
written to in place while it was read is refused before anything uses what was restored.

Restores and verifications wait for a fetch, so it takes both cores: an encrypted object is
hashed and decrypted side by side (the plaintext is used only once the checksum matches), and
``fetching`` runs the whole fetch while the caller prepares the database it restores into.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

from infra.backup import crypto, pg
from infra.backup.catalog import Manifest
from infra.backup.lock_watch import bounded_lock_waits
from infra.backup.progress import track
from infra.backup.storage import CHUNK_BYTES, Bucket, FileBucket
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
    _check_key(bucket, manifest, key)
    try:
        return _fetch(bucket, manifest, work, key)
    except OSError as error:
        raise _scratch_error(bucket, manifest, work, error) from None


@contextmanager
def fetched(bucket: Bucket, manifest: Manifest, work: Path, key: bytes | None) -> Iterator[Path]:
    """``fetch``, without the copy where the bucket is a local folder (see the module's
    docstring); BackupError on leaving if the object changed while it was in use. Only
    PostgreSQL dumps (the large ones) are read in place: only ``pg_restore`` is handed the
    descriptor."""
    _check_key(bucket, manifest, key)
    if not isinstance(bucket, FileBucket) or not Path("/dev/fd").is_dir():
        yield fetch(bucket, manifest, work, key)
        return
    if manifest.kind != "postgres":
        yield fetch(bucket, manifest, work, key)
        return
    try:
        fd = os.open(bucket.object_path(manifest.object_name), os.O_RDONLY)
    except FileNotFoundError:
        raise BackupError(f"{bucket.url}/{manifest.object_name} does not exist") from None
    except OSError as error:
        raise BackupError(
            f"cannot read {bucket.url}/{manifest.object_name}: "
            f"{error.strerror or type(error).__name__}"
        ) from None
    try:
        before = _identity(fd)
        try:
            dump = _checked_in_place(bucket, manifest, fd, work, key)
        except OSError as error:
            raise _scratch_error(bucket, manifest, work, error) from None
        yield dump
        if _identity(fd) != before:
            raise BackupError(
                f"{bucket.url}/{manifest.object_name} was written to while it was read: "
                "refusing what was read from it"
            )
    finally:
        os.close(fd)


@contextmanager
def fetching(
    bucket: Bucket, manifest: Manifest, work: Path, key: bytes | None
) -> Iterator[Callable[[], Path]]:
    """``fetched`` in a background thread, so the caller prepares its database meanwhile: call
    the yielded function for the dump (it waits, and raises what the fetch raised). A wrong
    or missing key is refused at once, before the caller changes anything."""
    _check_key(bucket, manifest, key)
    with ExitStack() as stack, ThreadPoolExecutor(1, thread_name_prefix="fetch") as pool:
        pending = pool.submit(stack.enter_context, fetched(bucket, manifest, work, key))
        yield pending.result


def _checked_in_place(
    bucket: Bucket, manifest: Manifest, fd: int, work: Path, key: bytes | None
) -> Path:
    """The checksum of the whole object, then ``_open_in_place``; for an encrypted object the
    two run side by side (hashing releases the GIL, and decryption writes only what it has
    authenticated), and a checksum failure is the error reported, whatever decryption made of
    it. An unencrypted archive is not unpacked before its checksum matches."""
    if key is None:
        _check_sum(bucket, manifest, _descriptor_chunks(fd))
        return _open_in_place(fd, manifest, work, key)
    with ThreadPoolExecutor(1, thread_name_prefix="checksum") as pool:
        checksum = pool.submit(_check_sum, bucket, manifest, _descriptor_chunks(fd))
        try:
            dump = _open_in_place(fd, manifest, work, key)
        except Exception:
            checksum.result()
            raise
        checksum.result()
    return dump


def _identity(fd: int) -> tuple[int, ...]:
    found = os.fstat(fd)
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def _descriptor_chunks(fd: int) -> Iterator[bytes]:
    """The whole file from its start, whatever the descriptor's offset."""
    offset = 0
    while chunk := os.pread(fd, CHUNK_BYTES, offset):
        offset += len(chunk)
        yield chunk


def _open_in_place(fd: int, manifest: Manifest, work: Path, key: bytes | None) -> Path:
    """The plaintext dump from the checked descriptor: the descriptor itself for a plain
    custom-format dump; otherwise decrypted and unpacked from it into ``work``."""
    if key is None and manifest.format != "directory":
        return Path(f"/dev/fd/{fd}")
    if key is None:
        with os.fdopen(os.dup(fd), "rb") as packed, tarfile.open(fileobj=packed) as tar:
            tar.extractall(work / "unpacked", filter="data")
        return work / "unpacked" / "dump"
    plain = work / "plain"
    with plain.open("wb") as handle:
        for chunk in crypto.decrypt(_descriptor_chunks(fd), key, manifest.object_name):
            handle.write(chunk)
    return _unpacked(plain, work, manifest)


def _scratch_error(bucket: Bucket, manifest: Manifest, work: Path, error: OSError) -> FileError:
    reason = error.strerror or type(error).__name__
    return FileError(
        f"cannot fetch {bucket.url}/{manifest.object_name} into {work}: {reason}; free "
        "space there or point TMPDIR at a larger folder"
    )


def _check_key(bucket: Bucket, manifest: Manifest, key: bytes | None) -> None:
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


def _check_sum(bucket: Bucket, manifest: Manifest, chunks: Iterator[bytes]) -> None:
    """Hash ``chunks`` (written nowhere); BackupError unless size and SHA-256 match."""
    digest = hashlib.sha256()
    size = 0
    for chunk in track(chunks, f"fetch {manifest.prefix}"):
        digest.update(chunk)
        size += len(chunk)
    if size != manifest.size or digest.hexdigest() != manifest.sha256:
        raise BackupError(
            f"{bucket.url}/{manifest.object_name} fails its checksum (size {size}, manifest "
            f"{manifest.size}; sha256 {digest.hexdigest()[:16]}..., manifest "
            f"{manifest.sha256[:16]}...): refusing to use it"
        )


def _fetch(bucket: Bucket, manifest: Manifest, work: Path, key: bytes | None) -> Path:
    stored = work / "stored"

    def copied() -> Iterator[bytes]:
        with stored.open("wb") as handle:
            for chunk in bucket.read(manifest.object_name):
                handle.write(chunk)
                yield chunk

    _check_sum(bucket, manifest, copied())
    plain = stored
    if key is not None:  # checked above: with a key, the object is encrypted
        plain = work / "plain"
        with plain.open("wb") as handle:
            for chunk in crypto.decrypt(_chunks(stored), key, manifest.object_name):
                handle.write(chunk)
        stored.unlink()
    return _unpacked(plain, work, manifest)


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
    # A dump read in place (``fetched``) is an open descriptor pg_restore inherits.
    inherited = (int(dump.name),) if dump.parent == Path("/dev/fd") else ()
    with bounded_lock_waits(admin_url, database) as watch:
        env["PGAPPNAME"] = watch.application_name
        result = subprocess.run(
            [*argv, str(dump)], env=env, capture_output=True, check=False, pass_fds=inherited
        )
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


def _unpacked(plain: Path, work: Path, manifest: Manifest) -> Path:
    """The dump pg_restore reads: a directory-format dump's folder, unpacked from its tar (the
    tar then deleted), or the plain file itself."""
    if manifest.format == "directory":
        with tarfile.open(plain) as tar:
            tar.extractall(work / "unpacked", filter="data")
        plain.unlink()
        return work / "unpacked" / "dump"
    return plain
