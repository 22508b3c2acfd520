"""Restore every service from its newest verified backup and report recovery time and point.

The one loop behind ``dr-drill`` and ``rebuild``: services are restored one after another, so
each service's recovery time counts from the start of the whole recovery (RTO), and its
recovery point is the age of the backup it got back (RPO). One service's failure is reported
and never stops the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from infra.backup.catalog import find, utc_now
from infra.backup.dump import Target
from infra.backup.restore import restore
from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.errors import PlatformError


def restore_services(
    target: Target,
    admin_url: str,
    config: StackConfig,
    credentials: Credentials,
    *,
    started: float,
    keep_replaced: bool,
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, dict[str, Any]]:
    """Per service: ``ok``, ``backup_id``, ``restore_s``, ``recovery_time_s`` (since
    ``started``, a ``time.monotonic()``), ``recovery_point_s``; or ``ok: false`` and ``error``."""
    report: dict[str, dict[str, Any]] = {}
    for spec in config.services:
        began = time.monotonic()
        try:
            entry = find(target.bucket, "postgres", spec.name, verified_only=True)
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
