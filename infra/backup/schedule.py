"""When the dev backup container runs next: the stack's cron schedule, evaluated in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def next_run(schedule: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that matches ``schedule``."""
    from croniter import croniter  # here: every backup command imports this module to start

    moment: datetime = croniter(schedule, after.astimezone(UTC)).get_next(datetime)
    return moment.astimezone(UTC)


def longest_gap_seconds(schedule: str, start: datetime | None = None, runs: int = 400) -> float:
    """The longest wait between two consecutive runs (over ``runs`` runs from ``start``).

    Monitoring alerts "no verified backup within two periods"; an irregular cron (e.g. only
    on weekdays) has its longest gap as the period, so a normal weekend never alerts.
    """
    moment = start or datetime(2026, 1, 1, tzinfo=UTC)
    longest = 0.0
    previous = next_run(schedule, moment)
    for _ in range(runs):
        following = next_run(schedule, previous)
        longest = max(longest, (following - previous).total_seconds())
        previous = following
    return longest
