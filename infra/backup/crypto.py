"""The backup key: client-side encryption of backup objects and the MACs of their records.

One master key (32 bytes, URL-safe base64) comes from PERSISTENCE_BACKUP_KEY, or from the file
PERSISTENCE_BACKUP_KEY_FILE names (owned by this user, unreadable by group and others), e.g.
from ``python -c "import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())"``.
HKDF derives separate subkeys from it: one encrypts objects, one signs manifests and
verification records (``mac``), so neither use can be turned against the other.

Each object gets its own key derived from the encryption subkey and a random salt, and every
chunk is sealed with AES-256-GCM. The associated data of each chunk binds the object's full
name (``<kind>/<service>/<backup id>/<object>``), the chunk counter and a last-chunk flag, so a
reordered, truncated, flipped, or moved/copied object fails decryption instead of restoring
garbage or another service's data. Format 2 (MAGIC) replaced format 1, whose chunks were bound
to their counter only; format 1 objects are refused (their manifests carry no MAC either).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from collections.abc import Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from infra.errors import BackupError, UsageError
from infra.private_file import PrivateFileError, read_private

KEY_ENV = "PERSISTENCE_BACKUP_KEY"
KEY_FILE_ENV = "PERSISTENCE_BACKUP_KEY_FILE"
MAGIC = b"PPBACKUP-AESGCM-2\n"
OLD_MAGICS = (b"PPBACKUP-AESGCM-1\n",)
SALT_BYTES = 32
CHUNK_BYTES = 1024 * 1024
_HEADER = struct.Struct(">BI")  # last-chunk flag, ciphertext length
_ENCRYPTION_INFO = b"persistence-backup/v2/object-encryption"
_MAC_INFO = b"persistence-backup/v2/record-mac"
GENERATE = 'python -c "import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'


def key_from_env() -> bytes | None:
    """The master key (from PERSISTENCE_BACKUP_KEY or the file PERSISTENCE_BACKUP_KEY_FILE
    names), or None when there is none: backups are then neither encrypted nor signed."""
    text = os.environ.get(KEY_ENV, "").strip()
    path = os.environ.get(KEY_FILE_ENV, "").strip()
    if text and path:
        raise UsageError(f"set {KEY_ENV} or {KEY_FILE_ENV}, not both")
    if path:
        return _parse(_read_key_file(path), f"{KEY_FILE_ENV} {path}")
    return _parse(text, KEY_ENV) if text else None


def _read_key_file(path: str) -> str:
    """The key file's text; refused unless it is ours and private (like ssh's private keys)."""
    try:
        text = read_private(path, f"{KEY_FILE_ENV} ", limit=4096)
    except PrivateFileError as error:
        raise UsageError(str(error)) from None
    return text.decode("ascii", errors="replace").strip()


def _parse(text: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise UsageError(
            f"{where} must hold 32 bytes in URL-safe base64 (44 characters), e.g. from {GENERATE}"
        )
    return key


def _subkey(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def mac(key: bytes, message: bytes) -> str:
    """HMAC-SHA256 of ``message`` under the MAC subkey, hex."""
    return hmac.new(_subkey(key, _MAC_INFO), message, hashlib.sha256).hexdigest()


def mac_matches(key: bytes, message: bytes, claimed: str) -> bool:
    return hmac.compare_digest(mac(key, message), claimed)


def key_id(key: bytes) -> str:
    """A non-secret fingerprint recorded in manifests, to say which key a backup needs."""
    return hashlib.sha256(b"persistence-backup-key-id" + key).hexdigest()[:16]


def _object_cipher(key: bytes, salt: bytes) -> AESGCM:
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"backup-object")
    return AESGCM(kdf.derive(_subkey(key, _ENCRYPTION_INFO)))


def _associated(name: str, counter: int, flag: int) -> bytes:
    """What each chunk is bound to besides its bytes: where it lives and where in the object."""
    encoded = name.encode()
    return (
        MAGIC
        + len(encoded).to_bytes(4, "big")
        + encoded
        + bytes([flag])
        + counter.to_bytes(8, "big")
    )


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


def encrypt(chunks: Iterable[bytes], key: bytes, name: str) -> Iterator[bytes]:
    """Seal a plaintext stream that will be stored as object ``name``."""
    salt = os.urandom(SALT_BYTES)
    cipher = _object_cipher(key, salt)
    yield MAGIC + salt
    pending: bytes | None = None
    counter = 0
    for chunk in _rechunk(chunks, CHUNK_BYTES):
        if pending is not None:
            yield _seal(cipher, name, counter, pending, last=False)
            counter += 1
        pending = chunk
    yield _seal(cipher, name, counter, pending or b"", last=True)


def _seal(cipher: AESGCM, name: str, counter: int, plain: bytes, *, last: bool) -> bytes:
    flag = 1 if last else 0
    sealed = cipher.encrypt(_nonce(counter), plain, _associated(name, counter, flag))
    return _HEADER.pack(flag, len(sealed)) + sealed


def decrypt(chunks: Iterable[bytes], key: bytes, name: str) -> Iterator[bytes]:
    """Open the sealed object ``name``; BackupError on any tampering, truncation, a wrong key
    or an object that was sealed under another name."""
    stream = _Reader(chunks)
    header = stream.take(len(MAGIC) + SALT_BYTES)
    if header[: len(MAGIC)] in OLD_MAGICS:
        raise BackupError(
            f"{name} is in encryption format 1, which does not bind an object to its name; "
            "it is refused: take a new backup"
        )
    if header[: len(MAGIC)] != MAGIC:
        raise BackupError(f"{name} is not encrypted with this tool's format")
    cipher = _object_cipher(key, header[len(MAGIC) :])
    counter = 0
    while True:
        flag, length = _HEADER.unpack(stream.take(_HEADER.size))
        sealed = stream.take(length)
        try:
            plain = cipher.decrypt(_nonce(counter), sealed, _associated(name, counter, flag))
        except InvalidTag:
            raise BackupError(
                f"{name} fails authentication at chunk {counter}: corrupt, sealed for another "
                "object name, or not written with this backup key"
            ) from None
        yield plain
        if flag == 1:
            break
        counter += 1
    if stream.take_rest():
        raise BackupError(f"{name} has trailing bytes after its last chunk")


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
