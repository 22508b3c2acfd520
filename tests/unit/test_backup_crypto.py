"""Client-side encryption of backup objects: round trip and every way tampering shows."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from infra.backup import crypto
from infra.errors import BackupError, UsageError

KEY = bytes(range(32))
NAME = "postgres/users/20261122T030000.000000Z/dump.pgcustom"
DATA = [os.urandom(700_000), b"", os.urandom(1_500_000), b"tail"]


def sealed() -> bytes:
    return b"".join(crypto.encrypt(DATA, KEY, NAME))


def test_round_trip_over_several_chunks() -> None:
    blob = sealed()
    assert blob.startswith(crypto.MAGIC)
    assert b"".join(
        crypto.decrypt([blob[i : i + 4096] for i in range(0, len(blob), 4096)], KEY, NAME)
    ) == b"".join(DATA)


def test_a_flipped_byte_truncation_or_wrong_key_is_refused() -> None:
    blob = bytearray(sealed())
    blob[len(blob) // 2] ^= 1
    with pytest.raises(BackupError, match="fails authentication"):
        b"".join(crypto.decrypt([bytes(blob)], KEY, NAME))
    good = sealed()
    with pytest.raises(BackupError, match=r"truncated|authentication"):
        b"".join(crypto.decrypt([good[: len(good) - 100]], KEY, NAME))
    with pytest.raises(BackupError, match="truncated"):
        b"".join(crypto.decrypt([good[: 1024 * 1024]], KEY, NAME))
    with pytest.raises(BackupError, match="not written with this backup key"):
        b"".join(crypto.decrypt([good], bytes(32), NAME))


def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    assert crypto.key_from_env() is None
    monkeypatch.setenv(crypto.KEY_ENV, "too-short")
    with pytest.raises(UsageError, match="32 bytes"):
        crypto.key_from_env()
    monkeypatch.setenv(crypto.KEY_ENV, "A" * 43 + "=")
    key = crypto.key_from_env()
    assert key is not None
    assert len(key) == 32
    assert crypto.key_id(key) != crypto.key_id(KEY)


def test_an_object_copied_or_moved_to_another_name_fails_to_decrypt() -> None:
    """The chunks' associated data binds the object's full name: service B's object under
    service A's folder (or another backup id) does not open, even with the right key."""
    blob = sealed()
    for other in (
        NAME.replace("users", "auth"),
        NAME.replace("20261122T030000", "20261123T030000"),
        NAME.replace("dump.pgcustom", "dump.rdb"),
    ):
        with pytest.raises(BackupError, match="sealed for another object name"):
            b"".join(crypto.decrypt([blob], KEY, other))


def test_format_1_objects_are_refused_by_name() -> None:
    old = b"PPBACKUP-AESGCM-1\n" + bytes(64)
    with pytest.raises(BackupError, match="format 1"):
        b"".join(crypto.decrypt([old], KEY, NAME))


def test_the_mac_subkey_is_not_the_encryption_key() -> None:
    """Separate HKDF subkeys: a MAC never equals an HMAC under the master key itself."""
    import hashlib
    import hmac

    assert crypto.mac(KEY, b"m") != hmac.new(KEY, b"m", hashlib.sha256).hexdigest()
    assert crypto.mac_matches(KEY, b"m", crypto.mac(KEY, b"m"))
    assert not crypto.mac_matches(bytes(32), b"m", crypto.mac(KEY, b"m"))


def _key_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "backup.key"
    path.write_text(base64.urlsafe_b64encode(KEY).decode() + "\n")
    path.chmod(mode)
    return path


def test_the_key_file_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    path = _key_file(tmp_path, 0o600)
    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(path))
    assert crypto.key_from_env() == KEY
    for mode in (0o640, 0o604, 0o620):
        path.chmod(mode)
        with pytest.raises(UsageError, match=f"mode {mode:04o}.*chmod 600"):
            crypto.key_from_env()
    path.chmod(0o600)
    monkeypatch.setenv(crypto.KEY_ENV, base64.urlsafe_b64encode(KEY).decode())
    with pytest.raises(UsageError, match="not both"):
        crypto.key_from_env()
    monkeypatch.delenv(crypto.KEY_ENV)
    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(tmp_path / "missing"))
    with pytest.raises(UsageError, match=r"cannot read PERSISTENCE_BACKUP_KEY_FILE .*missing"):
        crypto.key_from_env()


def test_a_link_or_a_fifo_in_place_of_the_key_file_is_refused_not_followed_or_waited_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _key_file(tmp_path, 0o600)
    link = tmp_path / "link"
    link.symlink_to(real)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(link))
    with pytest.raises(UsageError, match="is a symbolic link"):
        crypto.key_from_env()
    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(fifo))
    with pytest.raises(UsageError, match="not a regular file"):
        crypto.key_from_env()


def test_a_key_file_owned_by_someone_else_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _key_file(tmp_path, 0o600)
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(path))
    if os.geteuid() == 0:
        os.chown(path, 4242, 4242)  # root reads it anyway: only ownership can refuse it
    else:
        real_uid = os.getuid()
        monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)
    with pytest.raises(UsageError, match=r"owned by uid .* run `chown"):
        crypto.key_from_env()
