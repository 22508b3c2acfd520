"""Optional client-side encryption of backup objects, streamed in authenticated chunks.

The key comes from the environment (PERSISTENCE_BACKUP_KEY: 32 bytes, URL-safe base64, e.g.
from ``python -c "import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())"``).
Each object gets its own key derived with HKDF from the master key and a random salt, and every
chunk is sealed with AES-256-GCM; the chunk counter and a last-chunk flag are authenticated, so
a reordered, truncated or flipped byte fails decryption instead of restoring garbage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from collections.abc import Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from infra.errors import BackupError, UsageError

KEY_ENV = "PERSISTENCE_BACKUP_KEY"
KEY_FILE_ENV = "PERSISTENCE_BACKUP_KEY_FILE"  # placeholder until h-evidence lands
MAGIC = b"PPBACKUP-AESGCM-1\n"
SALT_BYTES = 32
CHUNK_BYTES = 1024 * 1024
_HEADER = struct.Struct(">BI")  # last-chunk flag, ciphertext length


def key_from_env() -> bytes | None:
    """The master key, or None when backups are not encrypted."""
    text = os.environ.get(KEY_ENV, "").strip()
    if not text:
        return None
    try:
        key = base64.urlsafe_b64decode(text)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise UsageError(
            f"{KEY_ENV} must be 32 bytes in URL-safe base64 (44 characters), e.g. from "
            'python -c "import base64,os;'
            'print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'
        )
    return key


def key_id(key: bytes) -> str:
    """A non-secret fingerprint recorded in manifests, to say which key a backup needs."""
    return hashlib.sha256(b"persistence-backup-key-id" + key).hexdigest()[:16]


def _object_cipher(key: bytes, salt: bytes) -> AESGCM:
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"backup-object")
    derived = kdf.derive(key)
    return AESGCM(derived)


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    yield bytes(buffer)


def _nonce(counter: int) -> bytes:
    return b"\0\0\0\0" + counter.to_bytes(8, "big")


def encrypt(chunks: Iterable[bytes], key: bytes) -> Iterator[bytes]:
    """Seal a plaintext stream."""
    salt = os.urandom(SALT_BYTES)
    cipher = _object_cipher(key, salt)
    yield MAGIC + salt
    pending: bytes | None = None
    counter = 0
    for chunk in _rechunk(chunks, CHUNK_BYTES):
        if pending is not None:
            yield _seal(cipher, counter, pending, last=False)
            counter += 1
        pending = chunk
    yield _seal(cipher, counter, pending or b"", last=True)


def _seal(cipher: AESGCM, counter: int, plain: bytes, *, last: bool) -> bytes:
    flag = 1 if last else 0
    sealed = cipher.encrypt(_nonce(counter), plain, bytes([flag]) + counter.to_bytes(8, "big"))
    return _HEADER.pack(flag, len(sealed)) + sealed


def decrypt(chunks: Iterable[bytes], key: bytes) -> Iterator[bytes]:
    """Open a sealed stream; BackupError on any tampering, truncation or wrong key."""
    stream = _Reader(chunks)
    header = stream.take(len(MAGIC) + SALT_BYTES)
    if header[: len(MAGIC)] != MAGIC:
        raise BackupError("backup object is not encrypted with this tool's format")
    cipher = _object_cipher(key, header[len(MAGIC) :])
    counter = 0
    while True:
        flag, length = _HEADER.unpack(stream.take(_HEADER.size))
        sealed = stream.take(length)
        try:
            plain = cipher.decrypt(
                _nonce(counter), sealed, bytes([flag]) + counter.to_bytes(8, "big")
            )
        except InvalidTag:
            raise BackupError(
                f"backup object fails authentication at chunk {counter}: corrupt, or "
                f"{KEY_ENV} is not the key it was written with"
            ) from None
        yield plain
        if flag == 1:
            break
        counter += 1
    if stream.take_rest():
        raise BackupError("backup object has trailing bytes after its last chunk")


class _Reader:
    """Exact-size reads over a chunk iterator."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()

    def take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise BackupError("backup object is truncated")
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def take_rest(self) -> bytes:
        rest = bytes(self._buffer) + b"".join(self._chunks)
        self._buffer.clear()
        return rest
