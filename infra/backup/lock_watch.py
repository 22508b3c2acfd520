"""A bound on the lock waits of a client binary that sets ``lock_timeout = 0`` itself.

``pg_restore`` runs the archive's own ``SET lock_timeout = 0``, so ``PGOPTIONS`` cannot bound
it. Where a service's login can connect to the database being restored into (a scratch database
its owner role owns, on a server without our ``pg_hba.conf``: Cloud SQL), it could hold a lock
the restore waits on forever. While the binary runs, a watcher over the same login cancels any
of its statements that has waited on a lock longer than ``PERSISTENCE_LOCK_TIMEOUT_S``; the
binary then fails, and the caller reports the wait, not the backup, as the cause.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg

from infra.errors import ServerError
from infra.postgres import driver

POLL_S = 0.5
# Our statements waiting on a lock for longer than the bound: by their application_name and by
# our own login (anyone may read an application_name and take it; a session of another login
# would make pg_cancel_backend fail and the watcher stop).
_OVERDUE = """
SELECT l.pid, pg_catalog.pg_cancel_backend(l.pid)
FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND a.application_name = %(name)s AND a.usename = session_user
  AND l.waitstart < pg_catalog.clock_timestamp() - pg_catalog.make_interval(secs => %(bound)s)
"""


@dataclass
class LockWatch:
    """What the watcher saw: the ``application_name`` to give the binary, and the pids it
    cancelled (empty: no statement waited past the bound)."""

    application_name: str
    cancelled: list[int] = field(default_factory=list)


@contextmanager
def bounded_lock_waits(url: str, database: str) -> Iterator[LockWatch]:
    """Watch the statements run under ``LockWatch.application_name`` in ``database``.

    The watcher logs in on its own thread: the binary does not wait for that login.
    """
    watch = LockWatch(f"persistence-restore-{uuid.uuid4().hex[:12]}")
    bound = driver.lock_timeout_s()
    stop = threading.Event()

    def run() -> None:
        try:
            conn = driver.connect(url, dbname=database, autocommit=True)
        except ServerError:  # unreachable: the binary fails on its own and says why
            return
        try:
            while not stop.wait(POLL_S):
                rows = conn.execute(_OVERDUE, {"name": watch.application_name, "bound": bound})
                watch.cancelled += [pid for pid, _ in rows.fetchall()]
        except psycopg.Error:
            pass  # the server went away: the binary fails on its own and says so
        finally:
            conn.close()

    thread = threading.Thread(target=run, name="lock-watch", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        stop.set()
        thread.join()
