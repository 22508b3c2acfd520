"""Prod's Memorystore ACL policy, fed to a real server the way Memorystore applies it.

The prod program runs under mocks with services no test names in advance; the rules of the
``AclPolicy`` it declares are applied with ``ACL SETUSER`` (Memorystore's mechanism) to a fresh
server whose only user is the built-in ``default``, in one transaction. Then every service logs
in with the password from its own ``REDIS_URL`` secret and is refused everything outside its
prefix, everything administrative, and every other service's keys and channels; ``default`` no
longer logs in. The server is the one dev runs (tests/servers/redis.py), so the rules are proven
on the engine both environments run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.exceptions
from pulumi.runtime.sync_await import _sync_await

from infra import naming
from tests.integration.test_redis_isolation import FORBIDDEN, REFUSED_BY_SERVER_SETTING, command
from tests.servers.redis import RedisServer
from tests.unit.gcp_program import (
    ProdRun,
    acl_policy_rules,
    hidden_services,
    redis_logins,
    run_prod_with,
)

FRESH_SERVER_ACL = "user default on nopass ~* &* +@all\n"  # before any policy is attached


@pytest.fixture(scope="module")
def prod() -> ProdRun:
    services = hidden_services(4242, count=6)
    # At least two Redis services, so that each has a neighbour to attack.
    services += [{"name": "zeta"}, {"name": "omega", "redis_scripting": True}]
    return run_prod_with(services)


@pytest.fixture(scope="module")
def policy(prod: ProdRun) -> list[dict[str, str]]:
    return acl_policy_rules(prod)


@pytest.fixture(scope="module")
def urls(prod: ProdRun) -> dict[str, tuple[str, str]]:
    found = redis_logins(prod)
    assert len(found) >= 2
    return found


@pytest.fixture(scope="module")
def server(
    dev_rendered: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory, policy: Any
) -> Iterator[RedisServer]:
    """A fresh server (dev's redis.conf), then the policy applied as Memorystore would."""
    rendered = tmp_path_factory.mktemp("fresh-valkey")
    (rendered / "redis").mkdir()
    shutil.copy(dev_rendered[0] / "redis" / "redis.conf", rendered / "redis" / "redis.conf")
    (rendered / "redis" / "users.acl").write_text(FRESH_SERVER_ACL)
    started = RedisServer(rendered).start()
    try:
        bootstrap = started.client()
        apply_policy(bootstrap, policy)
        bootstrap.close()
        yield started
    finally:
        started.cleanup()


def apply_policy(connection: redis.Redis, rules: list[dict[str, str]]) -> None:
    """Every rule with ``ACL SETUSER``, in one transaction, the way Memorystore applies a policy
    (``default`` goes off last, so the connection applying them keeps its rights until then)."""
    pipe = connection.pipeline(transaction=True)
    for rule in rules:
        pipe.execute_command(  # type: ignore[no-untyped-call]
            "ACL", "SETUSER", rule["username"], *rule["rule"].split()
        )
    assert all(answer in (True, "OK", b"OK") for answer in pipe.execute())


def login(server: RedisServer, credentials: tuple[str, str]) -> redis.Redis:
    return server.client(*credentials)


def test_each_service_works_in_its_own_prefix(
    server: RedisServer, urls: dict[str, tuple[str, str]]
) -> None:
    for service, credentials in urls.items():
        own = login(server, credentials)
        key = f"{naming.redis_key_prefix(service)}greeting"
        assert command(own, "SET", key, service) is True
        assert command(own, "GET", key) == service
        assert command(own, "ACL", "WHOAMI") == credentials[0]
        own.close()


def test_no_service_reaches_another_services_keys_or_channels(
    server: RedisServer, urls: dict[str, tuple[str, str]]
) -> None:
    services = sorted(urls)
    for service in services:
        other = services[(services.index(service) + 1) % len(services)]
        theirs = f"{naming.redis_key_prefix(other)}greeting"
        attacker = login(server, urls[service])
        for argv in (
            ["GET", theirs],
            ["SET", theirs, "forged"],
            ["DEL", theirs],
            ["RENAME", f"{naming.redis_key_prefix(service)}x", theirs],
            ["PUBLISH", f"{naming.redis_key_prefix(other)}events", "forged"],
            ["SUBSCRIBE", f"{naming.redis_key_prefix(other)}events"],
            ["PSUBSCRIBE", "*"],
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                command(attacker, *argv)
        attacker.close()


@pytest.fixture(scope="module")
def admin(server: RedisServer, prod: ProdRun) -> Iterator[redis.Redis]:
    """The policy's admin user, with the password the program generated for it."""
    credentials = _sync_await(prod.platform.passwords.everything.future())
    assert credentials is not None
    connection = server.client(prod.platform.config.redis.admin_user, credentials.redis_admin)
    yield connection
    connection.close()


@pytest.mark.parametrize("argv", FORBIDDEN, ids=[" ".join(a[:2]) for a in FORBIDDEN])
def test_no_service_runs_the_admins_commands(
    server: RedisServer, admin: redis.Redis, urls: dict[str, tuple[str, str]], argv: list[str]
) -> None:
    expected = (
        redis.exceptions.ResponseError
        if argv[0] in REFUSED_BY_SERVER_SETTING
        else redis.exceptions.NoPermissionError
    )
    for service, credentials in urls.items():
        connection = login(server, credentials)
        own = [f"{naming.redis_key_prefix(service)}k" if part == "{own}" else part for part in argv]
        with pytest.raises(expected):
            command(connection, *own)
        connection.close()
        # Refused by the ACL too, whatever the server's settings (Memorystore's are its own).
        verdict = command(admin, "ACL", "DRYRUN", credentials[0], *own)
        assert "no permissions" in verdict, verdict


def test_the_default_user_is_off(server: RedisServer) -> None:
    anonymous = server.client()
    with pytest.raises(redis.exceptions.AuthenticationError):
        command(anonymous, "PING")
    with pytest.raises(redis.exceptions.AuthenticationError):
        command(anonymous, "AUTH", "default", "")
    anonymous.close()


def test_the_admin_in_the_policy_can_back_up(admin: redis.Redis) -> None:
    assert command(admin, "DBSIZE") >= 0
    assert command(admin, "BGSAVE")
