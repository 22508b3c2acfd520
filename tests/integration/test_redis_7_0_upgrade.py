"""Valkey 8.0 takes over what Redis 7.0 left: a dev data volume, and the backups taken from it.

Dev ran Redis 7.0.15 before Valkey 8.0. ``make up`` replaces the container and keeps the data
volume, so the new server must load the old one's multi-part AOF (its base an RDB version 10)
with every key; and the backups taken before the move must still verify (Valkey's checker, as
Redis 7.0's refuses Valkey's RDB version 11) and restore (``RESTORE`` of version 10 payloads).
The files are written by a real Redis 7.0 for the session (``redis_7_0_fixtures.py``).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra import naming
from infra.backup.catalog import new_id, prefix, utc_now
from infra.backup.dump import Target, _finish, _store
from infra.backup.recovery import restore_redis
from infra.backup.redis_keys import KEYS_FORMAT, KEYS_OBJECT
from infra.backup.storage import FileBucket
from infra.config import StackConfig
from infra.credentials import Credentials
from tests.integration.backup_helpers import cli, secrets_path
from tests.integration.redis_7_0_fixtures import (
    AFTER_SAVE,
    BACKUP,
    BASE_KEYS,
    COUNTER,
    EXPIRES_AT_S,
    SERVICE,
    SESSION,
    STREAM,
    STREAM_IDS,
    VOLUME,
)
from tests.servers.process import chown_tree
from tests.servers.redis import OS_USER, RedisServer


def _assert_redis_7_0_keys(server: RedisServer, credentials: Credentials, admin_user: str) -> None:
    """Every key the fixture's server held, as the service reads it, expiry included."""
    app = server.client(naming.redis_user(SERVICE), credentials.for_service(SERVICE).redis)
    read: dict[str, Any] = {
        SESSION: app.get(SESSION),
        f"{SERVICE}:cart:1": app.hgetall(f"{SERVICE}:cart:1"),
        f"{SERVICE}:queue": app.lrange(f"{SERVICE}:queue", 0, -1),
        f"{SERVICE}:tags": app.smembers(f"{SERVICE}:tags"),
        f"{SERVICE}:scores": app.zrange(f"{SERVICE}:scores", 0, -1, withscores=True),
    }
    assert read == BASE_KEYS
    assert [entry_id for entry_id, _ in app.xrange(STREAM) or []] == list(STREAM_IDS)
    assert app.get(COUNTER) == "42"
    admin = server.client(admin_user, credentials.redis_admin)
    assert abs(admin.pexpiretime(SESSION) - EXPIRES_AT_S * 1000) < 1000
    app.close()
    admin.close()


@pytest.fixture
def old_volume(
    dev_rendered: tuple[Path, Credentials], redis_7_0_files: Path
) -> Iterator[RedisServer]:
    """Valkey 8.0 started on a copy of the data directory Redis 7.0 left."""
    server = RedisServer(dev_rendered[0])
    shutil.copytree(redis_7_0_files / VOLUME, server.data, dirs_exist_ok=True)
    chown_tree(server.root, OS_USER)
    yield server.start()
    server.cleanup()


def test_a_redis_7_0_volume_comes_up_under_valkey_with_its_keys(
    old_volume: RedisServer, dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> None:
    _, credentials = dev_rendered
    admin_user = dev_config.redis.admin_user
    _assert_redis_7_0_keys(old_volume, credentials, admin_user)
    admin = old_volume.client(admin_user, credentials.redis_admin)
    # Written after Redis 7.0 last saved dump.rdb: the AOF, not the snapshot, was loaded.
    assert admin.get(AFTER_SAVE) == "only in the AOF"
    assert admin.info("server")["valkey_version"].startswith("8.0.")

    # Valkey's first rewrite moves the volume to its own format; the keys stay across restarts.
    aof = old_volume.data / "appendonlydir"
    assert admin.bgrewriteaof()
    deadline = time.monotonic() + 20
    while admin.info("persistence")["aof_rewrite_in_progress"] and time.monotonic() < deadline:
        time.sleep(0.1)
    admin.close()
    (base,) = aof.glob("*.base.rdb")
    assert base.read_bytes()[:9] == b"REDIS0011", base
    old_volume.stop()
    old_volume.start()
    _assert_redis_7_0_keys(old_volume, credentials, admin_user)


def _store_fixture(target: Target, service: str, name: str, content: bytes) -> None:
    """``content`` as the Redis 7.0 tooling stored it: the object, then its manifest."""
    started = utc_now()
    backup_id = new_id(started)
    hashed = _store(target, prefix("redis", service, backup_id) + name, [content], "redis")
    if name == KEYS_OBJECT:
        _finish(
            target, "redis", backup_id, KEYS_OBJECT, KEYS_FORMAT, started, hashed, "7.0.15",
            "SCAN+DUMP", service=service, database=naming.redis_key_prefix(service),
            row_counts={"keys": content.count(b"\n")},
        )  # fmt: skip
    else:
        tool = "redis-cli --rdb"
        _finish(target, "redis", backup_id, name, "rdb", started, hashed, "7.0.15", tool)


def _verify(bucket: Path, rendered: Path) -> tuple[int, str, str]:
    secrets = str(secrets_path(rendered))
    return cli("verify", "--stack", "dev", "--secrets", secrets, "--bucket", f"file://{bucket}")


def test_redis_7_0_backups_verify_and_restore_on_valkey(
    fresh_redis_server: RedisServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    tmp_path: Path,
    redis_7_0_files: Path,
) -> None:
    rendered, credentials = dev_rendered
    backup = redis_7_0_files / BACKUP
    rdb = (backup / "dump.rdb").read_bytes()
    assert rdb[:9] == b"REDIS0010"  # what Redis 7.0 wrote; Valkey 8.0 writes REDIS0011
    bucket = tmp_path / "bucket"
    target = Target(FileBucket(bucket), None)
    _store_fixture(target, "server", "dump.rdb", rdb)
    _store_fixture(target, SERVICE, KEYS_OBJECT, (backup / f"{SERVICE}.keys.jsonl").read_bytes())

    code, out, err = _verify(bucket, rendered)
    assert code == 0, err + out
    assert "redis/server" in out, out
    assert f"redis/{SERVICE}" in out, out
    assert out.count(" verified in ") == 2, out

    # The checker reads the whole snapshot: a damaged one (its checksum matching its manifest,
    # as a bucket writer would make it) is refused.
    damaged = bytearray(rdb)
    damaged[len(rdb) // 2] ^= 0xFF
    broken = tmp_path / "broken"
    _store_fixture(Target(FileBucket(broken), None), "server", "dump.rdb", bytes(damaged))
    code, out, err = _verify(broken, rendered)
    assert code == 1, err + out
    assert "valkey-check-rdb rejects the snapshot" in err, err

    only_service = dataclasses.replace(
        dev_config, services=tuple(s for s in dev_config.services if s.name == SERVICE)
    )
    report = restore_redis(
        target,
        f"redis://127.0.0.1:{fresh_redis_server.port}",
        only_service,
        credentials,
        started=time.monotonic(),
    )
    assert report["ok"], report
    restored = report["services"][SERVICE]
    assert (restored["restored"], restored["expired"], restored["refused"]) == (8, 0, 0), restored
    _assert_redis_7_0_keys(fresh_redis_server, credentials, dev_config.redis.admin_user)
