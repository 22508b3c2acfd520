"""Is the backup loop healthy? What the dev backup container's health check asks.

Healthy means: the loop's last run failed nothing, and every service has a verified backup no
older than two schedule periods (the longest gap of ``backup.schedule``), or the loop started
less than two periods ago. ``docker ps`` then shows a stopped or failing backup at a glance.
The loop records its runs in a small status file; the backups themselves are read from the
bucket, so a status file cannot claim a backup that is not there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from infra import atomic_file
from infra.backup.catalog import entries
from infra.backup.schedule import longest_gap_seconds
from infra.backup.storage import Bucket


@dataclass(frozen=True)
class LoopStatus:
    """When the loop started, when it last ran, and what that run failed (empty: nothing)."""

    started: datetime
    last_run: datetime | None = None
    failed: tuple[str, ...] = ()


def write_status(path: Path, status: LoopStatus) -> None:
    document = {
        "started": status.started.isoformat(),
        "last_run": status.last_run.isoformat() if status.last_run else None,
        "failed": list(status.failed),
    }
    atomic_file.write_text(path, json.dumps(document) + "\n", 0o644, private_parent=False)


def read_status(path: Path) -> LoopStatus | None:
    """The loop's status, or None when there is none (or it is unreadable: not trusted)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        last_run = document["last_run"]
        return LoopStatus(
            started=datetime.fromisoformat(document["started"]),
            last_run=datetime.fromisoformat(last_run) if last_run else None,
            failed=tuple(str(item) for item in document["failed"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def problems(
    bucket: Bucket,
    services: list[str],
    schedule: str,
    status: LoopStatus | None,
    now: datetime,
    key: bytes | None,
) -> list[str]:
    """Everything that makes the loop unhealthy; empty when it is healthy (only proven backups
    count, see ``catalog.scan``)."""
    allowed = 2 * longest_gap_seconds(schedule)
    found = []
    if status is None:
        found.append("the backup loop has written no status: is it running?")
    elif status.failed:
        found.append(f"the last run failed: {'; '.join(status.failed)}")
    for service in services:
        verified = [
            e for e in entries(bucket, "postgres", service, key=key) if e.state == "verified"
        ]
        newest = max((e.manifest.finished for e in verified), default=None)
        if newest is not None:
            age = (now - newest).total_seconds()
            if age > allowed:
                found.append(
                    f"{service}: the newest verified backup is {age:.0f}s old "
                    f"(two schedule periods: {allowed:.0f}s)"
                )
        elif status is not None and (now - status.started).total_seconds() > allowed:
            found.append(f"{service}: no verified backup {allowed:.0f}s after the loop started")
    return found
