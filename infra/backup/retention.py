"""Which backups ``prune`` keeps: hourly, daily, weekly and monthly generations.

For each generation, walking from the newest backup back, the newest backup of each distinct
hour/day/ISO week/month is kept until that generation has as many periods as the stack asks
(restic's ``--keep-hourly`` etc. semantics). The newest verified backup is always kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from infra.config.model import KeepGenerations

PeriodKey = Callable[[datetime], tuple[int, ...]]

GENERATIONS: tuple[tuple[str, PeriodKey], ...] = (
    ("hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("daily", lambda t: (t.year, t.month, t.day)),
    ("weekly", lambda t: tuple(t.isocalendar()[:2])),
    ("monthly", lambda t: (t.year, t.month)),
)


def keep(
    times: Sequence[datetime], generations: KeepGenerations, newest_verified: datetime | None = None
) -> dict[datetime, list[str]]:
    """The backups to keep, each with the reasons (e.g. ['hourly', 'daily'])."""
    ordered = sorted(set(times), reverse=True)
    reasons: dict[datetime, list[str]] = {}
    for generation, period in GENERATIONS:
        wanted: int = getattr(generations, generation)
        seen: set[tuple[int, ...]] = set()
        for moment in ordered:
            if len(seen) >= wanted:
                break
            key = period(moment)
            if key not in seen:
                seen.add(key)
                reasons.setdefault(moment, []).append(generation)
    if newest_verified is not None:
        reasons.setdefault(newest_verified, []).append("newest verified")
    return reasons
