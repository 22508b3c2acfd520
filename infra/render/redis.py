"""redis.conf and users.acl: one ACL user per service, confined to its own key prefix."""

from __future__ import annotations

from infra import hashes, naming
from infra.config.model import ServiceSpec, StackConfig
from infra.credentials import Credentials
from infra.render.endpoints import REDIS_PORT
from infra.render.environment import render

CONFIG_DIR = "/usr/local/etc/redis"
CONFIG_FILE = f"{CONFIG_DIR}/redis.conf"
ACL_FILE = f"{CONFIG_DIR}/users.acl"
# The container's working directory; redis.conf says "./" so the tests can run it anywhere.
DATA_DIR = "/data"

SAVE_POINTS = ((3600, 1), (300, 100), (60, 10000))

# Off, with nothing it could do if it were turned on: a client that does not log in (or logs in
# as ``default``) gets no command, key or channel.
DEFAULT_USER = "default"
DEFAULT_USER_RULE = "off resetpass clearselectors nocommands resetkeys resetchannels"

# An application's command set, in ACL rule order (later rules win): data types,
# transactions and pub/sub; then everything administrative or dangerous is taken
# away, and with it every command a key or channel pattern cannot confine, because those
# would reveal or destroy other services' data (KEYS, SCAN, FLUSHALL, PUBSUB CHANNELS...).
# No scripting by default (``-@scripting`` last): a script that writes and then loops cannot be
# killed (SCRIPT KILL answers UNKILLABLE) and SCRIPT DEBUG SYNC blocks the server, so either
# freezes Redis for every service. ``redis_scripting: true`` gives back ``SCRIPTING_COMMANDS``.
# Only categories and commands Valkey 8.0 knows (dev, the tests and prod run 8.0): an unknown
# name makes the server refuse the whole ACL file (and Memorystore the policy).
SERVICE_CATEGORIES = (
    "-@all",
    "+@read",
    "+@write",
    "+@string",
    "+@hash",
    "+@list",
    "+@set",
    "+@sortedset",
    "+@bitmap",
    "+@hyperloglog",
    "+@geo",
    "+@stream",
    "+@pubsub",
    "+@transaction",
    "+@connection",
    "+@fast",
    "+@slow",
    "-@admin",
    "-@dangerous",
    "-@scripting",
)
FORBIDDEN_COMMANDS = (
    # Not confined by key patterns: list, scan or wipe the whole keyspace.
    "keys",
    "scan",
    "randomkey",
    "flushall",
    "flushdb",
    "dbsize",
    "swapdb",
    "select",
    "move",
    "migrate",
    "sort",
    "sort_ro",
    "object",
    "memory",
    "wait",
    "waitaof",
    # Server administration, persistence and replication belong to the admin user.
    "config",
    "debug",
    "shutdown",
    "monitor",
    "info",
    "lastsave",
    "latency",
    "slowlog",
    "acl",
    "bgsave",
    "bgrewriteaof",
    "save",
    "replicaof",
    "slaveof",
    "failover",
    "cluster",
    "readonly",
    "readwrite",
    "client",
    "reset",
    # Server-wide scripting state and channel listings.
    "function",
    "script|flush",
    "script|kill",
    "pubsub",
)
ALLOWED_SUBCOMMANDS = (
    "acl|whoami",
    "client|setname",
    "client|getname",
    "client|id",
    "client|info",
    # The connection's own library name and version, which clients send when they connect.
    "client|setinfo",
)
# The opt-in: running scripts (each redis.call() is checked against the user's key and channel
# patterns, and so are the keys EVAL is given), loading them (redis-py's Script does SCRIPT LOAD
# after a NOSCRIPT) and calling functions the admin loaded. Never SCRIPT DEBUG, FLUSH or KILL,
# nor FUNCTION LOAD/DELETE/FLUSH/RESTORE/KILL: that is server-wide state, shared by all.
SCRIPTING_COMMANDS = (
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
    "script|load",
    "script|exists",
)
SERVICE_COMMANDS = " ".join(
    [
        *SERVICE_CATEGORIES,
        *(f"-{command}" for command in FORBIDDEN_COMMANDS),
        *(f"+{command}" for command in ALLOWED_SUBCOMMANDS),
    ]
)
SCRIPTING_SERVICE_COMMANDS = " ".join(
    [SERVICE_COMMANDS, *(f"+{command}" for command in SCRIPTING_COMMANDS)]
)


def service_commands(service: ServiceSpec) -> str:
    """The service's ACL command rules: the default set, plus scripting if it opted in."""
    return SCRIPTING_SERVICE_COMMANDS if service.redis_scripting else SERVICE_COMMANDS


def redis_conf(config: StackConfig, bind: str = "0.0.0.0 -::*") -> str:
    """Durable server settings: AOF every second plus RDB snapshots."""
    return render(
        "redis/redis.conf.j2",
        bind=bind,
        port=REDIS_PORT,
        acl_file=ACL_FILE,
        data_dir="./",
        save_points=SAVE_POINTS,
        maxmemory_mb=config.redis.maxmemory_mb,
        maxmemory_policy=config.redis.maxmemory_policy,
    )


def service_users(config: StackConfig, credentials: Credentials) -> dict[str, dict[str, str]]:
    """Each service's ACL user: name -> its password hash, key/channel prefix and commands."""
    return {
        naming.redis_user(s.name): {
            "password_hash": hashes.redis_acl_hash(credentials.for_service(s.name).redis),
            "prefix": naming.redis_key_prefix(s.name),
            "commands": service_commands(s),
        }
        for s in config.services
        if s.redis
    }


def setuser_rules(user: dict[str, str]) -> list[str]:
    """``ACL SETUSER`` arguments giving a user exactly its users.acl line: passwords, keys,
    channels and selectors reset first and ``-@all`` leading the commands, so a changed hash,
    prefix or command set replaces the old one instead of adding to it. Not ``reset``: it also
    sets ``sanitize-payload``, which the file's users do not have."""
    prefix = user["prefix"]
    return ["on", "resetpass", user["password_hash"], "clearselectors", "resetkeys",
            "resetchannels", f"~{prefix}*", f"&{prefix}*", *user["commands"].split()]  # fmt: skip


def admin_rule(password_hash: str) -> str:
    """The admin's rule: every key, channel and command (backups, restores, live ACL pushes)."""
    return f"on resetpass {password_hash} clearselectors ~* &* +@all"


def acl_rules(config: StackConfig, credentials: Credentials) -> dict[str, str]:
    """Every ACL user of the stack and its rule, in the order a server should set them.

    The one source of dev's ``users.acl`` (a ``user <name> <rule>`` line each) and prod's
    Memorystore ACL policy (a rule each, which Memorystore applies with ``ACL SETUSER``), so the
    two cannot drift. Each rule resets what it sets (password, selectors, keys, channels,
    commands), so applying it to an existing user replaces the user instead of adding to it.
    Passwords appear only as SHA-256 hashes. ``default`` is switched off, last: a server still
    in its first state is set up through ``default``, which must keep its rights until every
    other user is in place (in one transaction, ``default`` first would refuse the rest)."""
    rules = {config.redis.admin_user: admin_rule(hashes.redis_acl_hash(credentials.redis_admin))}
    for name, user in service_users(config, credentials).items():
        if name in rules:  # the config refuses it first; a rule must never replace another
            raise ValueError(f"Redis user {name!r} would be defined twice")
        rules[name] = " ".join(setuser_rules(user))
    if DEFAULT_USER in rules:
        raise ValueError(f"Redis user {DEFAULT_USER!r} is the server's own")
    rules[DEFAULT_USER] = DEFAULT_USER_RULE
    return rules


def users_acl(config: StackConfig, credentials: Credentials) -> str:
    """The ACL file dev's server loads at start: ``acl_rules``, a line per user."""
    return render("redis/users.acl.j2", rules=acl_rules(config, credentials))
