"""When the dev backup container runs next: the stack's cron schedule, evaluated in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter


def next_run(schedule: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that matches ``schedule``."""
    moment: datetime = croniter(schedule, after.astimezone(UTC)).get_next(datetime)
    return moment.astimezone(UTC)
