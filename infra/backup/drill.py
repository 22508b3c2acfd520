"""``dr-drill``: rebuild every service on an empty server from its newest verified backup.

"Empty" means no service database holds data: a recovery stack that ``pulumi up`` has just
provisioned (databases and roles, no tables) is the prod-dr runbook's target, and it is empty
in that sense. A database with any table refuses the drill, so it never clobbers live data.

It measures what matters after a disaster: recovery time (from the start: convergence, then
each restore and its verification, in seconds) and recovery point (how old the restored backup
was). The databases it replaces hold no data, so they are dropped, not dumped.

Given scratch Redis and RabbitMQ servers (``redis_url``, ``management_url``), it then restores
each service's Redis keys and each managed vhost's RabbitMQ definitions with the very functions
``rebuild`` uses. A Redis that holds any key under a service's prefix refuses the drill before
anything changes; the scratch broker must already have the managed vhosts (booted from the
stack's rendered definitions): users and permissions are never taken from a backup. A part
without its server is reported as ``{"skipped": ...}``.
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any

from infra import naming
from infra.backup import pg
from infra.backup.dump import Target
from infra.backup.recovery import restore_rabbitmq, restore_redis, restore_services
from infra.backup.redis_keys import holds_keys
from infra.backup.restore import converge
from infra.broker.management import ManagementApi
from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.errors import PlatformError, UsageError
from infra.postgres.engine import ApplyFailedError
from infra.redis_client import RedisClient


def drill(
    target: Target,
    admin_url: str,
    config: StackConfig,
    credentials: Credentials,
    *,
    redis_url: str | None = None,
    management_url: str | None = None,
) -> dict[str, Any]:
    """Converge, restore, verify; the report says ``ok: false`` on any mismatch."""
    present = [
        s.name
        for s in config.services
        if pg.database_exists(admin_url, naming.database_name(s.name))
        and pg.holds_data(admin_url, naming.database_name(s.name))
    ]
    if present:
        raise UsageError(
            f"dr-drill needs an empty PostgreSQL server; {', '.join(present)} already hold data "
            "(point --admin-url at a fresh server)"
        )
    if redis_url:
        _refuse_live_redis(redis_url, config, credentials)
    started = time.monotonic()
    # A service that cannot be converged fails its own restore below, named in the report.
    with suppress(ApplyFailedError):
        converge(admin_url, config, credentials, None)
    converge_seconds = time.monotonic() - started
    services = restore_services(
        target, admin_url, config, credentials, started=started, keep_replaced=False
    )
    redis: dict[str, Any] = (
        restore_redis(target, redis_url, config, credentials, started=started)
        if redis_url
        else {"skipped": "no --redis-url"}
    )
    rabbitmq: dict[str, Any] = (
        _restore_broker(target, management_url, config, credentials, started=started)
        if management_url
        else {"skipped": "no --management-url"}
    )
    parts = [*services.values(), redis, rabbitmq]
    return {
        "ok": all(item.get("ok", True) for item in parts),
        "converge_s": round(converge_seconds, 3),
        "total_s": round(time.monotonic() - started, 3),
        "services": services,
        "redis": redis,
        "rabbitmq": rabbitmq,
    }


def _refuse_live_redis(redis_url: str, config: StackConfig, credentials: Credentials) -> None:
    """A scratch Redis must hold no key under any service's prefix: a drill never mixes in."""
    with RedisClient(redis_url, config.redis.admin_user, credentials.redis_admin) as client:
        present = [s.name for s in config.services if holds_keys(client, s.name)]
    if present:
        prefixes = ", ".join(naming.redis_key_prefix(name) for name in present)
        raise UsageError(
            f"dr-drill needs a Redis without service keys; it already holds keys under "
            f"{prefixes} (point --redis-url at a fresh server)"
        )


def _restore_broker(
    target: Target,
    management_url: str,
    config: StackConfig,
    credentials: Credentials,
    *,
    started: float,
) -> dict[str, Any]:
    """``restore_rabbitmq`` into a broker that already has every managed vhost; a missing one
    fails this part (the drill never creates vhosts, users or permissions from a backup)."""
    api = ManagementApi(management_url, config.rabbitmq.admin_user, credentials.rabbitmq_admin)
    try:
        found = api.get("/api/vhosts")
    except PlatformError as error:
        return {"ok": False, "error": str(error)}
    present = (
        {v.get("name") for v in found if isinstance(v, dict)} if isinstance(found, list) else set()
    )
    missing = sorted(
        vhost
        for vhost in (naming.rabbitmq_vhost(s.name) for s in config.services)
        if vhost not in present
    )
    if missing:
        return {
            "ok": False,
            "error": f"the scratch broker has no vhost {', '.join(missing)}: boot it from the "
            "stack's rendered definitions (python -m infra render), which create them",
        }
    return restore_rabbitmq(target, management_url, config, credentials, started=started)
