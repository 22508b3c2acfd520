"""One small storage interface for backup buckets: a local directory or a GCS bucket.

Backups are write-once: prod buckets carry a retention policy and no versioning, so an object
is never replaced. Writes are streamed so a multi-gigabyte dump never sits in memory, and an
interrupted write leaves no object under its final name.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from infra import atomic_file
from infra.errors import BackupError, UsageError

CHUNK_BYTES = 1024 * 1024
GCS_CHUNK_BYTES = 8 * 256 * 1024  # resumable uploads need a multiple of 256 KiB


class RetentionLockedError(BackupError):
    """The bucket refused a delete because the object is younger than its retention period."""


class Bucket(Protocol):
    """What the backup tooling needs from a bucket."""

    url: str

    def write(self, name: str, chunks: Iterable[bytes]) -> int:
        """Stream ``chunks`` into a new object; fail if ``name`` exists. Returns the size."""

    def read(self, name: str) -> Iterator[bytes]:
        """Stream an object's bytes."""

    def names(self, prefix: str = "") -> list[str]:
        """Every complete object name under ``prefix``."""

    def delete(self, name: str) -> None:
        """Remove an object; RetentionLockedError if the bucket's policy forbids it yet."""


def open_bucket(url: str) -> Bucket:
    """``file:///absolute/path`` or ``gs://bucket[/prefix]``."""
    parsed = urlparse(url)
    if parsed.scheme == "file" and parsed.path.startswith("/") and not parsed.netloc:
        return FileBucket(Path(parsed.path))
    if parsed.scheme == "gs" and parsed.netloc:
        return GcsBucket(parsed.netloc, parsed.path.strip("/"))
    raise UsageError(
        f"--bucket {url!r} is not a bucket URL; use file:///absolute/path or gs://bucket/prefix"
    )


def read_bytes(bucket: Bucket, name: str) -> bytes:
    return b"".join(bucket.read(name))


class FileBucket:
    """A directory used as a bucket (dev: the backup container's volume)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"

    def object_path(self, name: str) -> Path:
        """Where the object ``name`` lives (read in place by ``fetch.fetched``)."""
        return self._path(name)

    def _path(self, name: str) -> Path:
        if name.startswith("/") or ".." in name.split("/"):
            raise BackupError(f"object name {name!r} escapes the bucket")
        return self.root / name

    def write(self, name: str, chunks: Iterable[bytes]) -> int:
        """Write to a hidden partial file, then hard-link it in: never overwrites, never torn."""
        path = self._path(name)
        try:
            return self._write(path, name, chunks)
        except OSError as error:  # an unwritable or missing directory, a full disk
            raise BackupError(
                f"cannot write {self.url}/{name}: {error.strerror or type(error).__name__}"
            ) from None

    def _write(self, path: Path, name: str, chunks: Iterable[bytes]) -> int:
        atomic_file.create_private_dirs(path.parent)  # 0700 under any umask
        partial = path.parent / f".{path.name}.partial-{secrets.token_hex(4)}"
        size = 0
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    size += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(partial, path)
            except FileExistsError:
                raise BackupError(
                    f"{self.url}/{name} already exists; backups never overwrite"
                ) from None
        finally:
            partial.unlink(missing_ok=True)
        return size

    def read(self, name: str) -> Iterator[bytes]:
        try:
            handle = self._path(name).open("rb")
        except FileNotFoundError:
            raise BackupError(f"{self.url}/{name} does not exist") from None
        with handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk

    def names(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                name = path.relative_to(self.root).as_posix()
                if name.startswith(prefix):
                    found.append(name)
        return sorted(found)

    def stale_partials(self, older_than_seconds: float) -> list[Path]:
        """Hidden partial files left by killed writers (never objects; safe to remove)."""
        if not self.root.is_dir():
            return []
        cutoff = time.time() - older_than_seconds
        return [
            p for p in self.root.rglob(".*.partial-*") if p.is_file() and p.stat().st_mtime < cutoff
        ]

    def delete(self, name: str) -> None:
        path = self._path(name)
        path.unlink(missing_ok=True)
        parent = path.parent
        while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


class GcsBucket:
    """A GCS bucket (honours STORAGE_EMULATOR_HOST, which the tests use)."""

    def __init__(self, bucket: str, prefix: str) -> None:
        from google.cloud import storage  # imported here: slow, and only gs:// needs it

        self.url = f"gs://{bucket}" + (f"/{prefix}" if prefix else "")
        self.prefix = f"{prefix}/" if prefix else ""
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
            client = storage.Client(project="emulator", credentials=anonymous)
        else:
            client = storage.Client()
        self._bucket = client.bucket(bucket)

    def write(self, name: str, chunks: Iterable[bytes]) -> int:
        """A resumable upload that only becomes an object when finished; if_generation_match=0
        makes GCS refuse to replace an existing object."""
        from google.api_core import exceptions

        blob = self._bucket.blob(self.prefix + name, chunk_size=GCS_CHUNK_BYTES)
        size = 0
        if blob.exists():  # if_generation_match=0 alone is the race-free check on real GCS
            raise BackupError(f"{self.url}/{name} already exists; backups never overwrite")
        try:
            with blob.open("wb", if_generation_match=0, ignore_flush=True) as writer:
                for chunk in chunks:
                    writer.write(chunk)
                    size += len(chunk)
        except exceptions.PreconditionFailed:
            raise BackupError(
                f"{self.url}/{name} already exists; backups never overwrite"
            ) from None
        except exceptions.GoogleAPIError as error:
            raise BackupError(f"upload of {self.url}/{name} failed: {error}") from None
        return size

    def read(self, name: str) -> Iterator[bytes]:
        from google.api_core import exceptions

        blob = self._bucket.blob(self.prefix + name)
        try:
            with blob.open("rb", chunk_size=CHUNK_BYTES) as reader:
                while chunk := reader.read(CHUNK_BYTES):
                    yield chunk
        except exceptions.NotFound:
            raise BackupError(f"{self.url}/{name} does not exist") from None

    def names(self, prefix: str = "") -> list[str]:
        from google.api_core import exceptions

        try:
            blobs = self._bucket.client.list_blobs(self._bucket, prefix=self.prefix + prefix)
            return sorted(blob.name[len(self.prefix) :] for blob in blobs)
        except exceptions.NotFound:
            raise UsageError(f"--bucket {self.url}: no such bucket") from None
        except exceptions.GoogleAPIError as error:
            raise BackupError(f"cannot list {self.url}: {error}") from None

    def delete(self, name: str) -> None:
        from google.api_core import exceptions

        try:
            self._bucket.blob(self.prefix + name).delete()
        except exceptions.NotFound:
            return
        except exceptions.Forbidden as error:
            raise RetentionLockedError(
                f"{self.url}/{name} cannot be deleted yet (bucket retention policy): {error}"
            ) from None
