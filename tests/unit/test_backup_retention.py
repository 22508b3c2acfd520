"""prune's generation selection, with a fixed clock (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from infra.backup.retention import keep
from infra.config.model import KeepGenerations

NOW = datetime(2026, 11, 22, 12, 30, tzinfo=UTC)  # a Sunday


def every(step: timedelta, count: int) -> list[datetime]:
    return [NOW - step * i for i in range(count)]


def test_hourly_backups_for_ten_weeks_keep_exactly_the_asked_generations() -> None:
    times = every(timedelta(hours=1), 24 * 70)
    kept = keep(times, KeepGenerations(hourly=24, daily=7, weekly=4, monthly=3))
    hourly = [t for t, why in kept.items() if "hourly" in why]
    daily = [t for t, why in kept.items() if "daily" in why]
    weekly = [t for t, why in kept.items() if "weekly" in why]
    monthly = [t for t, why in kept.items() if "monthly" in why]
    assert sorted(hourly) == sorted(every(timedelta(hours=1), 24))
    # the newest backup of each of the last 7 days: today's 12:30, then 23:30 of earlier days
    assert sorted(daily) == sorted(
        [NOW] + [datetime(2026, 11, 21 - d, 23, 30, tzinfo=UTC) for d in range(6)]
    )
    # newest of each ISO week: this week (Sunday 22nd), then the Sundays before, 23:30
    assert sorted(weekly) == sorted(
        [NOW] + [datetime(2026, 11, 15, 23, 30, tzinfo=UTC) - timedelta(weeks=w) for w in range(3)]
    )
    assert sorted(monthly) == sorted(
        [NOW, datetime(2026, 10, 31, 23, 30, tzinfo=UTC), datetime(2026, 9, 30, 23, 30, tzinfo=UTC)]
    )
    assert len(kept) == len(set(hourly) | set(daily) | set(weekly) | set(monthly))


def test_zero_generations_keep_only_the_newest_verified() -> None:
    times = every(timedelta(hours=6), 20)
    verified = times[7]
    kept = keep(times, KeepGenerations(hourly=0, daily=0, weekly=0, monthly=0), verified)
    assert kept == {verified: ["newest verified"]}


def test_newest_verified_survives_even_outside_every_generation() -> None:
    times = every(timedelta(hours=1), 10)
    oldest = times[-1]
    kept = keep(times, KeepGenerations(hourly=2, daily=0, weekly=0, monthly=0), oldest)
    assert set(kept) == {times[0], times[1], oldest}


def test_several_backups_in_one_hour_keep_only_the_newest_of_that_hour() -> None:
    times = [
        NOW,
        NOW - timedelta(minutes=10),
        NOW - timedelta(minutes=20),
        NOW - timedelta(hours=1),
    ]
    kept = keep(times, KeepGenerations(hourly=5, daily=0, weekly=0, monthly=0))
    assert set(kept) == {NOW, NOW - timedelta(hours=1)}


def test_the_backup_loop_follows_the_cron_schedule_in_utc() -> None:
    from infra.backup.schedule import next_run

    assert next_run("0 * * * *", NOW) == datetime(2026, 11, 22, 13, 0, tzinfo=UTC)
    assert next_run("0 3 * * *", NOW) == datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    assert next_run("*/15 * * * *", datetime(2026, 11, 22, 12, 45, tzinfo=UTC)) == datetime(
        2026, 11, 22, 13, 0, tzinfo=UTC
    )
