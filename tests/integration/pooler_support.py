"""What the pooler tests share: running clients while watching the server's backends."""

from __future__ import annotations

import threading
import time

import psycopg


def peak_backends_while(
    admin_url: str, workers: list[threading.Thread], user: str | None = None
) -> int:
    """Start ``workers``, wait for them, and return the most backends (of login ``user``, or
    of every kind, the watcher's own included) the server held at any poll meanwhile."""
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        with psycopg.connect(admin_url, autocommit=True) as admin:
            while not stop.is_set():
                row = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE %(user)s::text IS NULL OR usename = %(user)s",
                    {"user": user},
                ).fetchone()
                peak = max(peak, int(row[0]) if row else 0)
                time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
    finally:
        stop.set()
        watcher.join()
    return peak
