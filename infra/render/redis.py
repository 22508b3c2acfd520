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
DATA_DIR = (
    "/data"  # the container's working directory; redis.conf says "./" so tests can run it anywhere
)

SAVE_POINTS = ((3600, 1), (300, 100), (60, 10000))

# An application's command set: data types, transactions, scripting and pub/sub, minus
# everything administrative or dangerous, and minus the commands a key pattern cannot
# confine (they would reveal or destroy other services' keys).
SERVICE_COMMANDS = " ".join(
    [
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
        "-keys",
        "-scan",
        "-randomkey",
        "-flushall",
        "-flushdb",
        "-config",
        "-debug",
        "-shutdown",
        "-monitor",
        "-swapdb",
        "-move",
        "-migrate",
        "-sort",
        "-sort_ro",
        "-function",
        "-script|flush",
        "-script|kill",
        "-pubsub",
        "-client",
        "-select",
        "-info",
        "-dbsize",
        "-lastsave",
        "-object",
        "-memory",
        "-latency",
        "-slowlog",
        "-acl",
        "-bgsave",
        "-bgrewriteaof",
        "-save",
        "-replicaof",
        "-slaveof",
        "-failover",
        "-cluster",
        "-readonly",
        "-readwrite",
        "-wait",
        "-reset",
        "+acl|whoami",
        "+client|setname",
        "+client|getname",
        "+client|id",
        "+client|info",
        "+pubsub|numsub",
        "+pubsub|numpat",
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


def users_acl(config: StackConfig, credentials: Credentials) -> str:
    """Passwords appear only as SHA-256 hashes; ``default`` is switched off."""
    users = [
        {
            "name": naming.redis_user(s.name),
            "password_hash": hashes.redis_acl_hash(credentials.for_service(s.name).redis),
            "prefix": naming.redis_key_prefix(s.name),
            "commands": SERVICE_COMMANDS,
        }
        for s in config.services
        if s.redis
    ]
    return render(
        "redis/users.acl.j2",
        admin_user=config.redis.admin_user,
        admin_hash=hashes.redis_acl_hash(credentials.redis_admin),
        users=users,
    )
