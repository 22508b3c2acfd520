"""Durability and removal on a real Valkey 8.0 server started from the rendered dev files.

AOF with ``appendfsync everysec`` must keep writes across a crash (SIGKILL, no shutdown save),
and the ACL file is authoritative: a service removed from the config loses its login as soon as
the re-rendered users.acl is loaded (ACL LOAD), and stays locked out after a restart.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.exceptions

from infra import naming
from infra.config import StackConfig
from infra.credentials import Credentials
from infra.render import redis as redis_files
from tests.servers.process import chown_tree
from tests.servers.redis import OS_USER, RedisServer

REMOVED = "audit"


@pytest.fixture(scope="module")
def redis_server(fresh_redis_server: RedisServer) -> RedisServer:
    """A server of this module's own, not the session's: these tests crash and restart it and
    rewrite its ACL file."""
    return fresh_redis_server


@pytest.fixture
def admin(
    redis_server: RedisServer, dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> Iterator[redis.Redis]:
    connection = redis_server.client(dev_config.redis.admin_user, dev_rendered[1].redis_admin)
    yield connection
    connection.close()


def service_client(server: RedisServer, credentials: Credentials, service: str) -> redis.Redis:
    return server.client(naming.redis_user(service), credentials.for_service(service).redis)


def test_append_only_file_is_on_disk(
    redis_server: RedisServer, dev_rendered: tuple[Path, Credentials]
) -> None:
    users = service_client(redis_server, dev_rendered[1], "users")
    users.set("users:aof-check", "1")
    users.close()
    aof_dir = redis_server.data / "appendonlydir"  # multi-part AOF: base, incr files, manifest
    assert aof_dir.is_dir(), sorted(p.name for p in redis_server.data.iterdir())
    names = sorted(p.name for p in aof_dir.iterdir())
    assert any(name.endswith(".manifest") for name in names), names
    assert any(name.endswith(".incr.aof") for name in names), names


def test_writes_survive_a_crash(
    redis_server: RedisServer, dev_rendered: tuple[Path, Credentials], admin: redis.Redis
) -> None:
    """SIGKILL skips the shutdown save, so only the AOF (fsynced every second) can bring it back."""
    credentials = dev_rendered[1]
    users = service_client(redis_server, credentials, "users")
    users.set("users:survives-crash", "yes")
    users.hset("users:session:crash", mapping={"user": "1"})
    users.close()
    assert admin.info("persistence")["rdb_changes_since_last_save"] > 0  # not in any RDB
    time.sleep(1.5)  # one everysec fsync
    os.kill(int(admin.info("server")["process_id"]), signal.SIGKILL)
    assert redis_server.process is not None
    redis_server.process.wait(timeout=10)
    redis_server.stop()
    redis_server.start()
    users = service_client(redis_server, credentials, "users")
    assert users.get("users:survives-crash") == "yes"
    assert users.hget("users:session:crash", "user") == "1"
    users.close()


def test_writes_survive_a_clean_restart(
    redis_server: RedisServer, dev_rendered: tuple[Path, Credentials]
) -> None:
    credentials = dev_rendered[1]
    events = service_client(redis_server, credentials, "events")
    events.rpush("events:backlog", "a", "b", "c")
    events.close()
    redis_server.stop()
    redis_server.start()
    events = service_client(redis_server, credentials, "events")
    assert events.lrange("events:backlog", 0, -1) == ["a", "b", "c"]
    events.close()


def test_removed_service_loses_its_login_when_the_acl_file_is_loaded(
    redis_server: RedisServer,
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
    admin: redis.Redis,
) -> None:
    credentials = dev_rendered[1]
    still_connected = service_client(redis_server, credentials, REMOVED)
    assert still_connected.set(f"{REMOVED}:before", "1")

    after = dataclasses.replace(
        dev_config, services=tuple(s for s in dev_config.services if s.name != REMOVED)
    )
    acl = redis_server.conf / "users.acl"
    acl.write_text(redis_files.users_acl(after, credentials))
    acl.chmod(0o600)
    chown_tree(redis_server.conf, OS_USER)
    assert admin.execute_command("ACL", "LOAD")  # type: ignore[no-untyped-call]
    # Valkey 8.0 (as Redis 7.0) recreates every user on ACL LOAD and closes every authenticated
    # connection, the admin's own included (after the reply): clients simply reconnect.
    admin.close()
    fresh_admin = redis_server.client(dev_config.redis.admin_user, credentials.redis_admin)
    assert REMOVED not in fresh_admin.acl_users()
    fresh_admin.close()
    with pytest.raises(redis.exceptions.AuthenticationError):
        service_client(redis_server, credentials, REMOVED).ping()
    with pytest.raises(redis.exceptions.RedisError):  # its open connection is closed too
        still_connected.get(f"{REMOVED}:before")
    still_connected.close()
    for spec in after.services:
        assert service_client(redis_server, credentials, spec.name).ping()

    # The file, not the running server, is authoritative: a restart keeps the login gone.
    redis_server.stop()
    redis_server.start()
    with pytest.raises(redis.exceptions.AuthenticationError):
        service_client(redis_server, credentials, REMOVED).ping()
