"""The move from Memorystore for Redis to Valkey (README, prod), its data path on real servers.

The old instance is a Redis 7.0 with one AUTH string on the ``default`` user, the way
Memorystore for Redis runs. Services write their keys under their prefixes, plus a key outside
every prefix (the prefix was only a convention there). The export is the old server's own RDB;
it travels through a bucket (the GCS emulator, as the runbook's ``gs://`` object); the new
server (the Valkey the tests and dev run) loads it the way an import does (with AOF off, then
AOF turned on, which rewrites it from memory: a server started with AOF on and no AOF yet would
ignore the RDB and start empty), the prod program's declared ACL policy is applied, and after a
restart every key is there with its value and TTL, each reachable by its own service only.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.exceptions
from pulumi.runtime.sync_await import _sync_await

from infra import naming
from infra.backup.storage import GcsBucket
from tests.integration.test_valkey_acl_policy import apply_policy
from tests.servers.gcs import GcsEmulator
from tests.servers.process import wait_until
from tests.servers.redis import RedisServer
from tests.unit.gcp_program import (
    ProdRun,
    acl_policy_rules,
    hidden_services,
    redis_logins,
    run_prod_with,
)

AUTH_STRING = "old-memorystore-auth-string"
ORPHAN = "legacy-session-counter"  # a key outside every service's prefix


def command(connection: redis.Redis, *argv: Any) -> Any:
    return connection.execute_command(*argv)  # type: ignore[no-untyped-call]


def rendered_dir(root: Path, dev_rendered: Path, acl: str, extra_conf: str = "") -> Path:
    (root / "redis").mkdir(parents=True)
    conf = (dev_rendered / "redis" / "redis.conf").read_text() + extra_conf
    (root / "redis" / "redis.conf").write_text(conf)
    (root / "redis" / "users.acl").write_text(acl)
    return root


def seed(connection: redis.Redis, prefix: str) -> None:
    """One key of each type a service might use, one of them expiring."""
    command(connection, "SET", f"{prefix}session", "alive", "EX", "86400")
    command(connection, "HSET", f"{prefix}profile", "name", "Ada", "plan", "pro")
    command(connection, "RPUSH", f"{prefix}jobs", "a", "b", "c")
    command(connection, "SADD", f"{prefix}tags", "x", "y")
    command(connection, "ZADD", f"{prefix}scores", "1.5", "p", "2", "q")
    command(connection, "XADD", f"{prefix}events", "1-1", "kind", "created")


READERS = {
    "string": ("GET",),
    "hash": ("HGETALL",),
    "list": ("LRANGE", 0, -1),
    "set": ("SMEMBERS",),
    "zset": ("ZRANGE", 0, -1, "WITHSCORES"),
    "stream": ("XRANGE", "-", "+"),
}


def snapshot(connection: redis.Redis, keys: list[str]) -> dict[str, Any]:
    """Each key's type, value (sets sorted) and whether it expires."""
    found: dict[str, Any] = {}
    for key in keys:
        kind = command(connection, "TYPE", key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        reader, *args = READERS[kind]
        value = command(connection, reader, key, *args)
        if kind == "set":
            value = sorted(value)
        found[key] = (kind, value, command(connection, "PTTL", key) > 0)
    return found


@pytest.fixture(scope="module")
def prod() -> ProdRun:
    return run_prod_with([*hidden_services(99, count=4), {"name": "orders"}])


def test_every_key_reaches_valkey_through_the_bucket_for_its_own_service_only(
    prod: ProdRun,
    dev_rendered: tuple[Path, Any],
    tmp_path: Path,
    gcs: GcsEmulator,
) -> None:
    logins = redis_logins(prod)
    assert len(logins) >= 2
    old_acl = f"user default on #{hashlib.sha256(AUTH_STRING.encode()).hexdigest()} ~* &* +@all\n"
    old = RedisServer(
        rendered_dir(tmp_path / "old", dev_rendered[0], old_acl), binary="redis-server"
    ).start()
    try:
        writer = old.client("default", AUTH_STRING)
        assert command(writer, "INFO", "server")["redis_version"].startswith("7.0")
        for service in logins:
            seed(writer, naming.redis_key_prefix(service))
        command(writer, "SET", ORPHAN, "41")
        keys = sorted(command(writer, "KEYS", "*"))
        before = snapshot(writer, keys)
        assert command(writer, "SAVE")
        writer.close()
        export = (old.data / "dump.rdb").read_bytes()
    finally:
        old.cleanup()

    # Through the bucket, as `gcloud redis instances export gs://...` leaves it.
    bucket = GcsBucket(gcs.bucket, "redis/")
    bucket.write("migration.rdb", [export])
    carried = b"".join(bucket.read("migration.rdb"))
    assert carried == export

    fresh_acl = "user default on nopass ~* &* +@all\n"
    new = RedisServer(
        rendered_dir(tmp_path / "new", dev_rendered[0], fresh_acl, "\nappendonly no\n")
    )
    (new.data / "dump.rdb").write_bytes(carried)
    shutil.chown(new.data / "dump.rdb", new.data.owner(), new.data.group())
    new.start()
    try:
        bootstrap = new.client()
        assert "valkey_version" in command(bootstrap, "INFO", "server")
        apply_policy(bootstrap, acl_policy_rules(prod))
        bootstrap.close()
        credentials = _sync_await(prod.platform.passwords.everything.future())
        assert credentials is not None
        admin_user = prod.platform.config.redis.admin_user
        admin = new.client(admin_user, credentials.redis_admin)
        # The import done, persistence as prod has it: AOF, rewritten from what was loaded.
        assert command(admin, "CONFIG", "SET", "appendonly", "yes")
        wait_until(
            lambda: (
                command(admin, "INFO", "persistence")["aof_rewrite_in_progress"] == 0
                and command(admin, "INFO", "persistence")["aof_enabled"] == 1
            ),
            30,
            "the AOF rewrite after the import",
            new.log_file,
        )
        # Memorystore keeps its policy across restarts; a plain server keeps it in its ACL file.
        assert command(admin, "ACL", "SAVE")
        admin.close()
        conf = new.conf / "redis.conf"
        conf.write_text(conf.read_text().replace("\nappendonly no\n", "\n"))
        new.stop()
        new.start()

        admin = new.client(admin_user, credentials.redis_admin)
        assert sorted(command(admin, "KEYS", "*")) == keys, "a key was lost"
        assert snapshot(admin, keys) == before, "a value or a TTL changed"
        admin.close()
        services = sorted(logins)
        for service in services:
            own = new.client(*logins[service])
            prefix = naming.redis_key_prefix(service)
            mine = [k for k in keys if k.startswith(prefix)]
            assert snapshot(own, mine) == {k: before[k] for k in mine}
            other = services[(services.index(service) + 1) % len(services)]
            for key in (f"{naming.redis_key_prefix(other)}session", ORPHAN):
                with pytest.raises(redis.exceptions.NoPermissionError):
                    command(own, "GET", key)
            own.close()
        with pytest.raises(redis.exceptions.AuthenticationError):
            command(new.client("default", AUTH_STRING), "PING")
    finally:
        new.cleanup()
