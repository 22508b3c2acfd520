"""redis.conf and users.acl: one ACL user per service, confined to its own key prefix."""

from __future__ import annotations

from infra import hashes, naming
from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.render.endpoints import REDIS_PORT
from infra.render.environment import render

CONFIG_DIR = "/usr/local/etc/redis"
CONFIG_FILE = f"{CONFIG_DIR}/redis.conf"
ACL_FILE = f"{CONFIG_DIR}/users.acl"
# The container's working directory; redis.conf says "./" so the tests can run it anywhere.
DATA_DIR = "/data"

SAVE_POINTS = ((3600, 1), (300, 100), (60, 10000))

# An application's command set, in ACL rule order (later rules win): data types,
# transactions, scripting and pub/sub; then everything administrative or dangerous is taken
# away, and with it every command a key or channel pattern cannot confine, because those
# would reveal or destroy other services' data (KEYS, SCAN, FLUSHALL, PUBSUB CHANNELS...).
# Lua scripts stay allowed: Redis 7 checks each redis.call() against the same key patterns.
# Only categories and commands Redis 7.0 knows (the dev image and the tests run 7.0.15):
# an unknown name makes the server refuse the whole ACL file.
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
    "+@scripting",
    "+@connection",
    "+@fast",
    "+@slow",
    "-@admin",
    "-@dangerous",
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
)
SERVICE_COMMANDS = " ".join(
    [
        *SERVICE_CATEGORIES,
        *(f"-{command}" for command in FORBIDDEN_COMMANDS),
        *(f"+{command}" for command in ALLOWED_SUBCOMMANDS),
    ]
)


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
            "commands": SERVICE_COMMANDS,
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


def users_acl(config: StackConfig, credentials: Credentials) -> str:
    """Passwords appear only as SHA-256 hashes; ``default`` is switched off."""
    users = [{"name": name, **user} for name, user in service_users(config, credentials).items()]
    return render(
        "redis/users.acl.j2",
        admin_user=config.redis.admin_user,
        admin_hash=hashes.redis_acl_hash(credentials.redis_admin),
        users=users,
    )
