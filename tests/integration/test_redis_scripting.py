"""Lua scripting on a real Valkey 8.0 server started from the rendered users.acl.

A script that writes and then loops cannot be stopped (SCRIPT KILL answers UNKILLABLE; only
SHUTDOWN NOSAVE recovers) and ``SCRIPT DEBUG SYNC`` blocks the server while a debugger session
lasts, so one service could freeze Redis for all. By default a service's user gets no scripting
command at all; ``redis_scripting: true`` gives one service EVAL and its kin, still confined to
its key prefix, and never SCRIPT DEBUG or FUNCTION management.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.exceptions

from infra import naming
from infra.config import StackConfig
from infra.credentials import Credentials
from tests.conftest import render_to
from tests.servers.process import wait_until
from tests.servers.redis import RedisServer

SCRIPTED = "users"  # the service that opts in here
PLAIN = "auth"  # a service that keeps the default
LOOP_FOREVER = "redis.call('SET', KEYS[1], '1') while true do end"
SHA = "0" * 40

# Every scripting command of Valkey 8.0 (Redis 7.0's set), with arguments that pass the arity
# check (the ACL is checked after it). "{own}" becomes a key under the service's own prefix.
SCRIPTING: list[list[str]] = [
    ["EVAL", "return 1", "0"],
    ["EVAL", LOOP_FOREVER, "1", "{own}"],
    ["EVALSHA", SHA, "0"],
    ["EVAL_RO", "return 1", "0"],
    ["EVALSHA_RO", SHA, "0"],
    ["FCALL", "f", "0"],
    ["FCALL_RO", "f", "0"],
    ["SCRIPT", "LOAD", "return 1"],
    ["SCRIPT", "EXISTS", SHA],
    ["SCRIPT", "DEBUG", "SYNC"],
    ["SCRIPT", "FLUSH"],
    ["SCRIPT", "KILL"],
    ["FUNCTION", "LOAD", "#!lua name=lib\nredis.register_function('f', function() end)"],
    ["FUNCTION", "LIST"],
    ["FUNCTION", "FLUSH"],
    ["FUNCTION", "DELETE", "lib"],
    ["FUNCTION", "DUMP"],
    ["FUNCTION", "RESTORE", "x"],
    ["FUNCTION", "KILL"],
    ["FUNCTION", "STATS"],
]
# What the opt-in still refuses: server-wide script state and the debugger.
REFUSED_WITH_OPT_IN = [c for c in SCRIPTING if c[0] in ("SCRIPT", "FUNCTION")]
REFUSED_WITH_OPT_IN = [c for c in REFUSED_WITH_OPT_IN if c[1] not in ("LOAD", "EXISTS")]
REFUSED_WITH_OPT_IN.append(["FUNCTION", "LOAD", "#!lua name=lib\nreturn 1"])
REFUSED_WITH_OPT_IN += [["SCRIPT", "DEBUG", "YES"], ["SCRIPT", "DEBUG", "NO"]]


def run(connection: redis.Redis, service: str, argv: list[str]) -> Any:
    own = f"{naming.redis_key_prefix(service)}scripting-test"
    words = [own if part == "{own}" else part for part in argv]
    return connection.execute_command(*words)  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def opted_in(
    tmp_path_factory: pytest.TempPathFactory,
    dev_config: StackConfig,
    dev_rendered: tuple[Path, Credentials],
) -> Iterator[tuple[RedisServer, StackConfig]]:
    """A server of the module's own (an attack that got through would freeze it), from
    files rendered with ``SCRIPTED`` opted in and every other service left at the default."""
    services = tuple(
        dataclasses.replace(s, redis_scripting=True) if s.name == SCRIPTED else s
        for s in dev_config.services
    )
    config = dataclasses.replace(dev_config, services=services)
    rendered = render_to(tmp_path_factory.mktemp("scripting"), config, dev_rendered[1])
    server = RedisServer(rendered).start()
    yield server, config
    server.cleanup()


def login(server: RedisServer, credentials: Credentials, service: str) -> redis.Redis:
    return server.client(naming.redis_user(service), credentials.for_service(service).redis)


@pytest.mark.parametrize("argv", SCRIPTING, ids=[" ".join(c[:2])[:24] for c in SCRIPTING])
def test_by_default_a_service_has_no_scripting_command(
    opted_in: tuple[RedisServer, StackConfig],
    dev_rendered: tuple[Path, Credentials],
    argv: list[str],
) -> None:
    connection = login(opted_in[0], dev_rendered[1], PLAIN)
    with pytest.raises(redis.exceptions.NoPermissionError):
        run(connection, PLAIN, argv)
    connection.close()


def test_the_freeze_attack_is_refused_and_redis_keeps_answering(
    opted_in: tuple[RedisServer, StackConfig], dev_rendered: tuple[Path, Credentials]
) -> None:
    """The attack as a service would run it: debugger in sync mode, then a script that writes
    and loops. Both are refused, and another service's next command is answered at once."""
    server, _ = opted_in
    credentials = dev_rendered[1]
    attacker = login(server, credentials, PLAIN)
    for argv in (["SCRIPT", "DEBUG", "SYNC"], ["EVAL", LOOP_FOREVER, "1", "{own}"]):
        with pytest.raises(redis.exceptions.NoPermissionError):
            run(attacker, PLAIN, argv)
    bystander = login(server, credentials, SCRIPTED)
    assert bystander.ping()
    attacker.close()
    bystander.close()


def test_the_opt_in_runs_scripts_on_the_services_own_keys(
    opted_in: tuple[RedisServer, StackConfig], dev_rendered: tuple[Path, Credentials]
) -> None:
    server, _ = opted_in
    own = login(server, dev_rendered[1], SCRIPTED)
    key = f"{naming.redis_key_prefix(SCRIPTED)}counter"
    assert own.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", 1, key, 5) == 5
    assert own.eval_ro("return redis.call('GET', KEYS[1])", 1, key) == "5"
    script = own.register_script("return redis.call('INCR', KEYS[1])")  # EVALSHA, SCRIPT LOAD
    assert script(keys=[key]) == 6
    assert own.script_exists(script.sha) == [True]
    own.delete(key)
    own.close()


def test_the_opt_in_cannot_reach_another_services_keys_from_a_script(
    opted_in: tuple[RedisServer, StackConfig], dev_rendered: tuple[Path, Credentials]
) -> None:
    server, _ = opted_in
    own = login(server, dev_rendered[1], SCRIPTED)
    theirs = f"{naming.redis_key_prefix(PLAIN)}secret"
    attempts: list[Callable[[], object]] = [
        lambda: own.eval("return redis.call('GET', KEYS[1])", 1, theirs),
        lambda: own.eval("return redis.call('SET', KEYS[1], 'x')", 1, theirs),
        lambda: own.eval(f"return redis.call('GET', '{theirs}')", 0),
        lambda: own.eval("return redis.call('KEYS', '*')", 0),
        lambda: own.eval("return redis.call('FLUSHALL')", 0),
    ]
    for attempt in attempts:
        with pytest.raises(
            redis.exceptions.ResponseError,
            match=r"(?i)noperm|no permissions|can.t access|can.t run this command",
        ):
            attempt()
    own.close()


@pytest.mark.parametrize(
    "argv", REFUSED_WITH_OPT_IN, ids=[" ".join(c[:3])[:24] for c in REFUSED_WITH_OPT_IN]
)
def test_the_opt_in_still_refuses_the_debugger_and_server_wide_script_state(
    opted_in: tuple[RedisServer, StackConfig],
    dev_rendered: tuple[Path, Credentials],
    argv: list[str],
) -> None:
    server, _ = opted_in
    own = login(server, dev_rendered[1], SCRIPTED)
    with pytest.raises(redis.exceptions.NoPermissionError):
        run(own, SCRIPTED, argv)
    own.close()


def test_only_the_opted_in_service_gets_scripting(
    opted_in: tuple[RedisServer, StackConfig], dev_rendered: tuple[Path, Credentials]
) -> None:
    server, config = opted_in
    for spec in config.services:
        connection = login(server, dev_rendered[1], spec.name)
        if spec.name == SCRIPTED:
            assert connection.eval("return 1", 0) == 1
        else:
            with pytest.raises(redis.exceptions.NoPermissionError):
                connection.eval("return 1", 0)
        connection.close()


def test_the_opt_ins_residual_risk_is_what_the_readme_says(
    opted_in: tuple[RedisServer, StackConfig],
    dev_rendered: tuple[Path, Credentials],
    dev_config: StackConfig,
) -> None:
    """Runs last: it ends the module's server. An opted-in service's script that writes and
    then loops freezes Redis for everyone: SCRIPT KILL answers UNKILLABLE, and only SHUTDOWN
    NOSAVE ends it. (``busy-reply-threshold`` is lowered so the test waits 0.1 s, not 5 s.)"""
    server, _ = opted_in
    credentials = dev_rendered[1]
    admin = server.client(dev_config.redis.admin_user, credentials.redis_admin)
    admin.config_set("busy-reply-threshold", 100)
    looping = login(server, credentials, SCRIPTED)
    stuck = threading.Thread(target=loop_until_shutdown, args=(looping,), daemon=True)
    stuck.start()
    bystander = login(server, credentials, PLAIN)
    wait_until(lambda: busy(bystander), 10, "Redis to report the script as busy")
    with pytest.raises(redis.exceptions.ResponseError, match="UNKILLABLE"):
        admin.script_kill()
    admin.shutdown(nosave=True)  # redis-py takes the dropped connection as success
    stuck.join(10)
    assert server.process is not None
    assert server.process.wait(10) == 0


def loop_until_shutdown(connection: redis.Redis) -> None:
    """The attacker's call: it returns only when the server goes away."""
    with pytest.raises(redis.exceptions.ConnectionError):
        run(connection, SCRIPTED, ["EVAL", LOOP_FOREVER, "1", "{own}"])


def busy(connection: redis.Redis) -> bool:
    """True once Redis answers BUSY: a script has run past busy-reply-threshold."""
    try:
        connection.ping()
    except redis.exceptions.BusyLoadingError:
        return False
    except redis.exceptions.ResponseError as error:
        return "BUSY" in str(error)
    return False
