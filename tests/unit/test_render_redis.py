"""users.acl and redis.conf as rendered text: the per-service ACL model, without a server.

The integration tests prove the same files on a real Valkey 8.0 server; these pin the shape fast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

import pytest

from infra import naming
from infra.config.model import RedisSettings, StackConfig
from infra.credentials import Credentials
from infra.render import redis as redis_files
from infra.render import render_all

# Names Valkey 8.0 does not know (dev, prod and the tests run 8.0): commands of Valkey 8.1
# (COMMANDLOG), 9.0 (DELIFEQ, the hash field expiry family) or Redis 7.4, and a category no
# release has. Naming one makes valkey-server 8.0 refuse the whole ACL file.
UNKNOWN_TO_VALKEY_8_0 = ("commandlog", "delifeq", "hexpire", "hgetex", "hsetex", "@monitor")


@pytest.fixture(scope="module", params=["dev", "prod"])
def stack(
    request: pytest.FixtureRequest, dev_config: StackConfig, prod_config: StackConfig
) -> tuple[StackConfig, Credentials]:
    config = dev_config if request.param == "dev" else prod_config
    return config, Credentials.generate().completed_for(config)


def acl_lines(config: StackConfig, credentials: Credentials) -> dict[str, str]:
    """users.acl as {user name: its rule line}."""
    text = render_all(config, credentials)["redis/users.acl"].content
    lines = [line for line in text.splitlines() if line.strip()]
    assert all(line.startswith("user ") for line in lines), "ACL files allow only user lines"
    return {line.split()[1]: line for line in lines}


def test_every_redis_service_has_exactly_one_user(stack: tuple[StackConfig, Credentials]) -> None:
    config, credentials = stack
    users = acl_lines(config, credentials)
    services = {naming.redis_user(s.name) for s in config.services}
    expected = {"default", config.redis.admin_user, *services}
    assert set(users) == expected


def test_a_service_without_redis_gets_no_user(dev_config: StackConfig) -> None:
    first, *rest = dev_config.services
    config = dataclasses.replace(
        dev_config, services=(dataclasses.replace(first, redis=False), *rest)
    )
    users = acl_lines(config, Credentials.generate().completed_for(config))
    assert naming.redis_user(first.name) not in users
    assert (
        "REDIS_URL"
        not in render_all(config, Credentials.generate().completed_for(config))[
            f"services/{first.name}.env"
        ].content
    )


def test_passwords_only_as_sha256_hashes(stack: tuple[StackConfig, Credentials]) -> None:
    config, credentials = stack
    text = render_all(config, credentials)["redis/users.acl"].content
    passwords = {config.redis.admin_user: credentials.redis_admin} | {
        naming.redis_user(s.name): credentials.for_service(s.name).redis for s in config.services
    }
    lines = acl_lines(config, credentials)
    for user, password in passwords.items():
        assert password not in text
        digest = "#" + hashlib.sha256(password.encode()).hexdigest()
        assert digest in lines[user].split(), user
    assert ">" not in text
    assert "nopass" not in text


def test_default_user_is_switched_off(stack: tuple[StackConfig, Credentials]) -> None:
    words = acl_lines(*stack)["default"].split()
    assert "off" in words
    assert "on" not in words
    assert "nocommands" in words
    assert "resetpass" in words
    assert not any(w.startswith(("#", ">", "~", "&", "+")) for w in words)


def test_service_is_confined_to_its_prefix(stack: tuple[StackConfig, Credentials]) -> None:
    config, credentials = stack
    lines = acl_lines(config, credentials)
    for spec in config.services:
        words = lines[naming.redis_user(spec.name)].split()
        prefix = naming.redis_key_prefix(spec.name)
        assert [w for w in words if w.startswith("~")] == [f"~{prefix}*"], spec.name
        assert [w for w in words if w.startswith("&")] == [f"&{prefix}*"], spec.name
        assert words.index("resetkeys") < words.index(f"~{prefix}*")
        assert words.index("resetchannels") < words.index(f"&{prefix}*")
        assert "allkeys" not in words
        assert "allchannels" not in words
        assert naming.redis_session_prefix(spec.name).startswith(prefix)


@pytest.mark.parametrize(
    "command",
    [
        "keys",
        "scan",
        "randomkey",
        "flushall",
        "flushdb",
        "config",
        "debug",
        "shutdown",
        "monitor",
        "swapdb",
        "select",
        "acl",
        "client",
        "pubsub",
        "info",
        "bgsave",
        "function",
    ],
)
def test_forbidden_commands_are_removed_after_every_grant(
    dev_config: StackConfig, command: str
) -> None:
    words = redis_files.SERVICE_COMMANDS.split()
    last_grant = max(i for i, w in enumerate(words) if w.startswith("+@"))
    assert f"-{command}" in words
    assert words.index(f"-{command}") > last_grant
    assert words.index("-@admin") > last_grant
    assert words.index("-@dangerous") > last_grant
    assert f"+{command}" not in words  # only harmless subcommands come back


def test_only_harmless_subcommands_are_given_back() -> None:
    granted = [w for w in redis_files.SERVICE_COMMANDS.split() if w.startswith("+") and "|" in w]
    assert set(granted) <= {
        "+acl|whoami",
        "+client|setname",
        "+client|getname",
        "+client|id",
        "+client|info",
        "+client|setinfo",  # its own connection's library name and version only
    }


def test_acl_is_valid_for_valkey_8_0() -> None:
    words = redis_files.SERVICE_COMMANDS.lower().split()
    for newer in UNKNOWN_TO_VALKEY_8_0:
        assert not any(w.lstrip("+-") == newer for w in words), newer


def test_admin_has_everything_for_operations_and_backups(
    stack: tuple[StackConfig, Credentials],
) -> None:
    config, credentials = stack
    words = acl_lines(config, credentials)[config.redis.admin_user].split()
    assert {"on", "~*", "&*", "+@all"} <= set(words)


def test_redis_conf_settings_come_from_the_stack(dev_config: StackConfig) -> None:
    config = dataclasses.replace(
        dev_config, redis=RedisSettings(maxmemory_mb=1024, maxmemory_policy="allkeys-lru")
    )
    text = redis_files.redis_conf(config)
    lines = [line.strip() for line in text.splitlines()]
    for expected in (
        "maxmemory 1024mb",
        "maxmemory-policy allkeys-lru",
        "appendonly yes",
        "appendfsync everysec",
        "protected-mode yes",
        f"aclfile {redis_files.ACL_FILE}",
        "dir ./",
    ):
        assert expected in lines, expected
    assert [line for line in lines if line.startswith("save ")] == [
        f"save {s} {c}" for s, c in redis_files.SAVE_POINTS
    ]
    # Users live only in the ACL file: Redis refuses to start with both.
    assert not any(re.match(r"^user\s", line) for line in lines)


def test_scripting_is_taken_away_after_every_grant_by_default() -> None:
    words = redis_files.SERVICE_COMMANDS.split()
    last_grant = max(i for i, w in enumerate(words) if w.startswith("+@"))
    assert words.index("-@scripting") > last_grant
    assert not [w for w in words if w.lstrip("+").split("|")[0] in ("eval", "script", "fcall")]


def test_the_scripting_opt_in_gives_back_scripts_but_never_the_debugger(
    dev_config: StackConfig,
) -> None:
    spec = dataclasses.replace(dev_config.services[0], redis_scripting=True)
    words = redis_files.service_commands(spec).split()
    assert {"+eval", "+evalsha", "+script|load"} <= set(words)
    granted = {w for w in words if w.startswith("+")}
    assert not granted & {"+@scripting", "+script", "+script|debug", "+script|flush",
                          "+script|kill", "+function"}  # fmt: skip
    assert redis_files.service_commands(dev_config.services[0]) == redis_files.SERVICE_COMMANDS
