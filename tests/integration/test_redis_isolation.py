"""Valkey 8.0 started from the rendered dev redis.conf and users.acl: one ACL user per service.

Every claim is checked with real client connections (redis-py): a service reads and writes its
own prefix and gets NOPERM everywhere else, ``default`` cannot log in, and the admin can run the
operations (BGSAVE for backups) that services cannot.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from infra import naming
from infra.config import StackConfig, load_stack
from infra.credentials import Credentials
from tests.servers.redis import RedisServer

SERVICES = [s.name for s in load_stack("dev").services if s.redis]
OTHER = "zz-not-mine:"  # a prefix no service owns

# Commands a service must never run, each with valid arguments (Redis checks arity before ACLs).
# "{own}" becomes a key under the service's own prefix: the command is refused even there.
FORBIDDEN: list[list[str]] = [
    ["KEYS", "*"],
    ["SCAN", "0"],
    ["RANDOMKEY"],
    ["FLUSHALL"],
    ["FLUSHDB"],
    ["CONFIG", "GET", "maxmemory"],
    ["CONFIG", "SET", "maxmemory", "1mb"],
    ["CONFIG", "REWRITE"],
    ["DEBUG", "SLEEP", "0"],
    ["SHUTDOWN", "NOSAVE"],
    ["MONITOR"],
    ["SWAPDB", "0", "1"],
    ["WAIT", "0", "0"],
    ["WAITAOF", "0", "0", "0"],
    ["SELECT", "1"],
    ["MOVE", "{own}", "1"],
    ["MIGRATE", "127.0.0.1", "1", "{own}", "0", "100"],
    ["SORT", "{own}"],
    ["SORT_RO", "{own}"],
    ["OBJECT", "ENCODING", "{own}"],
    ["FUNCTION", "FLUSH"],
    ["FUNCTION", "LIST"],
    ["SCRIPT", "FLUSH"],
    ["SCRIPT", "KILL"],
    ["PUBSUB", "CHANNELS"],
    ["PUBSUB", "NUMSUB", "x"],
    ["CLIENT", "LIST"],
    ["CLIENT", "KILL", "127.0.0.1:1"],
    ["CLIENT", "PAUSE", "1"],
    ["INFO"],
    ["DBSIZE"],
    ["LASTSAVE"],
    ["ACL", "LIST"],
    ["ACL", "SETUSER", "intruder"],
    ["ACL", "DELUSER", "intruder"],
    ["ACL", "LOAD"],
    ["ACL", "SAVE"],
    ["ACL", "GETUSER", "default"],
    ["BGSAVE"],
    ["BGREWRITEAOF"],
    ["SAVE"],
    ["REPLICAOF", "NO", "ONE"],
    ["SLAVEOF", "NO", "ONE"],
    ["FAILOVER"],
    ["CLUSTER", "INFO"],
    ["LATENCY", "LATEST"],
    ["SLOWLOG", "GET"],
    ["MEMORY", "STATS"],
    ["MODULE", "LIST"],
    ["ROLE"],
    ["SYNC"],
    ["PSYNC", "?", "-1"],
    ["RESTORE", "{own}", "0", "x"],
]


def command(connection: redis.Redis, *argv: str) -> Any:
    """A raw command (redis-py's execute_command is untyped)."""
    return connection.execute_command(*argv)  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def clients(
    redis_server: RedisServer, dev_rendered: tuple[Path, Credentials]
) -> Iterator[dict[str, redis.Redis]]:
    """One connection per service, logged in as that service's ACL user."""
    _, credentials = dev_rendered
    opened = {
        s: redis_server.client(naming.redis_user(s), credentials.for_service(s).redis)
        for s in SERVICES
    }
    yield opened
    for connection in opened.values():
        connection.close()


@pytest.fixture(scope="module")
def admin(
    redis_server: RedisServer, dev_rendered: tuple[Path, Credentials], dev_config: StackConfig
) -> Iterator[redis.Redis]:
    connection = redis_server.client(dev_config.redis.admin_user, dev_rendered[1].redis_admin)
    yield connection
    connection.close()


@pytest.mark.parametrize("service", SERVICES)
def test_service_reads_and_writes_its_own_prefix(
    clients: dict[str, redis.Redis], service: str
) -> None:
    own = clients[service]
    prefix = naming.redis_key_prefix(service)
    assert own.set(f"{prefix}greeting", "hello")
    assert own.get(f"{prefix}greeting") == "hello"
    assert own.hset(f"{prefix}hash", "field", "1") == 1
    assert own.lpush(f"{prefix}list", "a", "b") == 2
    assert own.incr(f"{prefix}counter") >= 1
    pipeline = own.pipeline(transaction=True)
    pipeline.set(f"{prefix}tx", "1")
    pipeline.expire(f"{prefix}tx", 60)
    assert pipeline.execute() == [True, True]
    assert own.publish(f"{prefix}events", "ping") == 0
    assert own.acl_whoami() == naming.redis_user(service)
    # What client libraries send on connect (Jedis, Lettuce, redis-py 5): its own name only.
    assert command(own, "CLIENT", "SETINFO", "LIB-NAME", f"{service}-app") in (True, "OK")
    assert f"lib-name={service}-app" in command(own, "CLIENT", "INFO")
    assert own.delete(f"{prefix}greeting", f"{prefix}hash", f"{prefix}list") == 3


@pytest.mark.parametrize("service", SERVICES)
def test_sessions_live_under_the_service_prefix(
    clients: dict[str, redis.Redis], service: str
) -> None:
    own = clients[service]
    session = f"{naming.redis_session_prefix(service)}abc123"
    assert session.startswith(naming.redis_key_prefix(service))
    assert own.set(session, '{"user": 1}', ex=1800)
    assert 0 < own.ttl(session) <= 1800
    with pytest.raises(redis.exceptions.NoPermissionError):
        own.set("session:abc123", "x", ex=1800)


@pytest.mark.parametrize(("service", "other"), list(itertools.permutations(SERVICES, 2)))
def test_service_gets_noperm_on_another_services_prefix(
    clients: dict[str, redis.Redis], service: str, other: str
) -> None:
    own = clients[service]
    theirs = f"{naming.redis_key_prefix(other)}secret"
    attempts: list[Callable[[], object]] = [
        lambda: own.get(theirs),
        lambda: own.set(theirs, "x"),
        lambda: own.delete(theirs),
        lambda: own.exists(theirs),
        lambda: own.rename(f"{naming.redis_key_prefix(service)}k", theirs),
        lambda: own.publish(f"{naming.redis_key_prefix(other)}events", "x"),
    ]
    # Scripts (an opt-in) reaching another prefix: tests/integration/test_redis_scripting.py.
    for attempt in attempts:
        with pytest.raises(
            (redis.exceptions.NoPermissionError, redis.exceptions.ResponseError),
            match=r"(?i)noperm|no permissions|can't access",
        ):
            attempt()


@pytest.mark.parametrize("service", SERVICES)
def test_service_cannot_subscribe_to_another_prefix(
    redis_server: RedisServer, dev_rendered: tuple[Path, Credentials], service: str
) -> None:
    connection = redis_server.client(service, dev_rendered[1].for_service(service).redis)
    for channel in (f"{OTHER}events", "__keyspace@0__:*"):
        with pytest.raises(redis.exceptions.NoPermissionError):
            command(connection, "SUBSCRIBE", channel)
    with pytest.raises(redis.exceptions.NoPermissionError):
        command(connection, "PSUBSCRIBE", "*")
    connection.close()


# Refused before the ACL check by a server setting (enable-debug-command / -module-command no);
# the ACL DRYRUN below proves the ACL refuses them as well.
REFUSED_BY_SERVER_SETTING = {"DEBUG", "MODULE"}


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("forbidden", FORBIDDEN, ids=[" ".join(c[:2]) for c in FORBIDDEN])
def test_forbidden_command_is_refused(
    clients: dict[str, redis.Redis], admin: redis.Redis, service: str, forbidden: list[str]
) -> None:
    own_key = f"{naming.redis_key_prefix(service)}forbidden-test"
    argv = [own_key if part == "{own}" else part for part in forbidden]
    expected = (
        redis.exceptions.ResponseError
        if forbidden[0] in REFUSED_BY_SERVER_SETTING
        else redis.exceptions.NoPermissionError
    )
    with pytest.raises(expected):
        command(clients[service], *argv)
    verdict = command(admin, "ACL", "DRYRUN", naming.redis_user(service), *argv)
    assert "no permissions" in verdict, verdict


def test_default_user_cannot_authenticate(redis_server: RedisServer) -> None:
    anonymous = redis.Redis(
        host="127.0.0.1", port=redis_server.port, socket_timeout=5, retry=Retry(NoBackoff(), 0)
    )
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    for password in ("", "default", "nopass"):
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis_server.client("default", password).ping()


def test_wrong_password_is_refused(redis_server: RedisServer) -> None:
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis_server.client(SERVICES[0], "not-the-password").ping()


def test_admin_runs_operations_and_backups(admin: redis.Redis, dev_config: StackConfig) -> None:
    assert admin.acl_whoami() == dev_config.redis.admin_user
    before = admin.lastsave()
    assert command(admin, "BGSAVE") in ("Background saving started", True)
    assert admin.lastsave() >= before
    users = set(admin.acl_users())
    assert users == {"default", dev_config.redis.admin_user, *SERVICES}
    default = command(admin, "ACL", "GETUSER", "default")
    assert "off" in default["flags"]


def test_server_settings_come_from_the_stack(admin: redis.Redis, dev_config: StackConfig) -> None:
    settings: dict[str, str] = command(admin, "CONFIG", "GET", "*")
    assert settings["protected-mode"] == "yes"
    assert settings["appendonly"] == "yes"
    assert settings["appendfsync"] == "everysec"
    assert settings["save"] == "3600 1 300 100 60 10000"
    assert int(settings["maxmemory"]) == dev_config.redis.maxmemory_mb * 1024 * 1024
    assert settings["maxmemory-policy"] == dev_config.redis.maxmemory_policy


def test_no_plaintext_password_in_users_acl(dev_rendered: tuple[Path, Credentials]) -> None:
    rendered, credentials = dev_rendered
    text = (rendered / "redis" / "users.acl").read_text()
    services = [credentials.for_service(s).redis for s in SERVICES]
    for password in [credentials.redis_admin, *services]:
        assert password not in text
    assert ">" not in text  # the plaintext form of an ACL password
