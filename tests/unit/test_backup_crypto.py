"""Client-side encryption of backup objects: round trip and every way tampering shows."""

from __future__ import annotations

import os

import pytest

from infra.backup import crypto
from infra.errors import BackupError, UsageError

KEY = bytes(range(32))
DATA = [os.urandom(700_000), b"", os.urandom(1_500_000), b"tail"]


def sealed() -> bytes:
    return b"".join(crypto.encrypt(DATA, KEY))


def test_round_trip_over_several_chunks() -> None:
    blob = sealed()
    assert blob.startswith(crypto.MAGIC)
    assert b"".join(
        crypto.decrypt([blob[i : i + 4096] for i in range(0, len(blob), 4096)], KEY)
    ) == b"".join(DATA)


def test_a_flipped_byte_truncation_or_wrong_key_is_refused() -> None:
    blob = bytearray(sealed())
    blob[len(blob) // 2] ^= 1
    with pytest.raises(BackupError, match="fails authentication"):
        b"".join(crypto.decrypt([bytes(blob)], KEY))
    good = sealed()
    with pytest.raises(BackupError, match=r"truncated|authentication"):
        b"".join(crypto.decrypt([good[: len(good) - 100]], KEY))
    with pytest.raises(BackupError, match="truncated"):
        b"".join(crypto.decrypt([good[: 1024 * 1024]], KEY))
    with pytest.raises(BackupError, match="not the key"):
        b"".join(crypto.decrypt([good], bytes(32)))


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
