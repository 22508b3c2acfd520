"""Restore every service from its newest verified backup and report recovery time and point.

The one set of loops behind ``dr-drill`` and ``rebuild``: PostgreSQL per service, then the
Redis keys per service (``restore_redis``), then each managed vhost's RabbitMQ definitions
(``restore_rabbitmq``). Each part's recovery time counts from the start of the whole recovery
(RTO), and its recovery point is the age of the backup it got back (RPO). One service's (or
one part's) failure is reported and never stops the others.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from infra.backup.catalog import find, utc_now
from infra.backup.definitions import restore_definitions
from infra.backup.dump import Target
from infra.backup.fetch import fetch
from infra.backup.redis_keys import KEYS_FORMAT, restore_keys
from infra.backup.restore import restore
from infra.backup.workdir import private_workdir
from infra.broker.management import ManagementApi
from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.errors import BackupError, PlatformError
from infra.redis_client import RedisClient


def restore_services(
    target: Target,
    admin_url: str,
    config: StackConfig,
    credentials: Credentials,
    *,
    started: float,
    keep_replaced: bool,
    say: Callable[[str], None] = lambda line: None,
    before: datetime | None = None,
) -> dict[str, dict[str, Any]]:
    """Per service: ``ok``, ``backup_id``, ``restore_s``, ``recovery_time_s`` (since
    ``started``, a ``time.monotonic()``), ``recovery_point_s``; or ``ok: false`` and ``error``.
    ``before``: only backups started before then (see ``catalog.find``)."""
    report: dict[str, dict[str, Any]] = {}
    for spec in config.services:
        began = time.monotonic()
        say(f"{spec.name}: restoring its database")
        try:
            entry = find(
                target.bucket,
                "postgres",
                spec.name,
                verified_only=True,
                before=before,
                key=target.key,
            )
            restored = restore(
                target, entry, admin_url, config, credentials, keep_replaced=keep_replaced
            )
        except PlatformError as error:
            report[spec.name] = {"ok": False, "error": str(error)}
            say(f"{spec.name}: NOT restored: {error}")
            continue
        item = {
            "ok": True,
            "backup_id": restored.backup_id,
            "restore_s": round(time.monotonic() - began, 3),
            "recovery_time_s": round(time.monotonic() - started, 3),
            "recovery_point_s": round((utc_now() - entry.manifest.finished).total_seconds(), 3),
        }
        report[spec.name] = item
        say(
            f"{spec.name}: restored {restored.backup_id} in {restored.seconds:.1f}s; "
            f"recovery time {item['recovery_time_s']:.1f}s, "
            f"recovery point {item['recovery_point_s']:.0f}s"
        )
    return report


def _age(moment: datetime) -> float:
    return round((utc_now() - moment).total_seconds(), 3)


def restore_redis(
    target: Target,
    redis_url: str,
    config: StackConfig,
    credentials: Credentials,
    *,
    started: float,
    say: Callable[[str], None] = lambda line: None,
    before: datetime | None = None,
) -> dict[str, Any]:
    """Every Redis service's keys from its newest verified key backup, into the running server.

    ``{"ok", "recovery_time_s", "recovery_point_s" (the oldest service's), "services": {name:
    {"ok", "backup_id", "recovery_point_s", "restored", "kept", "expired", "refused"}}}``; a
    service that failed has ``ok: false`` and ``error``.
    """
    services: dict[str, dict[str, Any]] = {}
    wanted = [spec.name for spec in config.services if spec.redis]
    try:
        client = RedisClient(redis_url, config.redis.admin_user, credentials.redis_admin)
    except PlatformError as error:
        say(f"redis: NOT restored: {error}")
        return {"ok": False, "error": str(error), "services": {}}
    with client, private_workdir("redisrestore") as work:
        for name in wanted:
            say(f"redis/{name}: restoring keys")
            try:
                entry = find(
                    target.bucket, "redis", name, verified_only=True, before=before, key=target.key
                )
                if entry.manifest.format != KEYS_FORMAT:
                    raise BackupError(f"{entry.manifest.prefix} is not a key backup")
                folder = work / name
                folder.mkdir()
                done = restore_keys(
                    client,
                    fetch(target.bucket, entry.manifest, folder, target.key),
                    entry.manifest,
                    name,
                )
            except PlatformError as error:
                services[name] = {"ok": False, "error": str(error)}
                say(f"redis/{name}: NOT restored: {error}")
                continue
            item: dict[str, Any] = {
                "ok": not done.rejected and not done.refused,
                "backup_id": entry.manifest.backup_id,
                "recovery_point_s": _age(entry.manifest.started),
                "restored": done.restored,
                "kept": done.kept,
                "expired": done.expired,
                "refused": done.refused,
            }
            if done.refused:
                item["error"] = f"{done.refused} keys outside {name}'s prefix refused"
            if done.rejected:
                item["rejected"] = done.rejected[:10]
            services[name] = item
            say(
                f"redis/{name}: restored {done.restored} keys from {entry.manifest.backup_id} "
                f"(kept {done.kept} newer, {done.expired} expired, {done.refused} refused); "
                f"recovery time {time.monotonic() - started:.1f}s, "
                f"recovery point {item['recovery_point_s']:.0f}s"
            )
    points = [item["recovery_point_s"] for item in services.values() if "recovery_point_s" in item]
    return {
        "ok": all(item["ok"] for item in services.values()),
        "recovery_time_s": round(time.monotonic() - started, 3),
        "recovery_point_s": max(points, default=None),
        "services": services,
    }


def restore_rabbitmq(
    target: Target,
    management_url: str,
    config: StackConfig,
    credentials: Credentials,
    *,
    started: float,
    say: Callable[[str], None] = lambda line: None,
    before: datetime | None = None,
) -> dict[str, Any]:
    """Each managed vhost's queues, exchanges, bindings and policies from the newest verified
    definitions backup (see ``infra.backup.definitions`` for what is never taken from it).

    ``{"ok", "backup_id", "recovery_time_s", "recovery_point_s", "vhosts": {vhost: {"ok",
    "exchanges", "queues", "bindings", "policies"}}, "refused": [...]}``; ``ok: false`` and
    ``error`` when the backup could not be used at all.
    """
    say("rabbitmq: restoring definitions")
    try:
        entry = find(
            target.bucket, "rabbitmq", "server", verified_only=True, before=before, key=target.key
        )
        with private_workdir("brokerrestore") as work:
            raw = fetch(target.bucket, entry.manifest, work, target.key).read_bytes()
        try:
            document = json.loads(raw)
        except ValueError as error:
            raise BackupError(f"{entry.manifest.prefix}: not JSON ({error})") from None
        api = ManagementApi(management_url, config.rabbitmq.admin_user, credentials.rabbitmq_admin)
        vhosts, selection = restore_definitions(api, document, config, credentials)
    except PlatformError as error:
        say(f"rabbitmq: NOT restored: {error}")
        return {"ok": False, "error": str(error)}
    for vhost, item in vhosts.items():
        if item["ok"]:
            say(
                f"rabbitmq/{vhost}: {item['queues']} queues, {item['exchanges']} exchanges, "
                f"{item['bindings']} bindings, {item['policies']} policies restored"
            )
        else:
            say(f"rabbitmq/{vhost}: NOT restored: {item['error']}")
    for line in selection.refused:
        say(f"rabbitmq: refused from the backup: {line}")
    report = {
        "ok": all(item["ok"] for item in vhosts.values()),
        "backup_id": entry.manifest.backup_id,
        "recovery_time_s": round(time.monotonic() - started, 3),
        "recovery_point_s": _age(entry.manifest.finished),
        "vhosts": vhosts,
        "refused": selection.refused,
        "from_config": selection.from_config,
    }
    say(
        f"rabbitmq: recovery time {report['recovery_time_s']:.1f}s, "
        f"recovery point {report['recovery_point_s']:.0f}s"
    )
    return report
