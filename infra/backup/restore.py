"""``restore``: bring a service database back without ever risking the one it replaces.

Order: check the backup's checksum, restore into ``<service>__restore`` (as the service's tool
login acting as its owner role, never as the admin, without the dump's owners or grants),
compare it with the manifest, and only then swap names: the live database is renamed aside to
``<service>__old_<time>``, and that renamed-aside copy *is* the safety copy of what it held.
Finally the role convergence re-imposes ownership and privileges, and the service is back.
Nothing is dumped on this path: ``infra.backup.safety`` dumps the old copy later (the next
``backup``, or ``restore --secure-replaced``) and drops it only once that dump is verified.

A restore killed half way is repaired by the next ``apply``, ``backup`` or ``restore`` of that
service (``recover``): anything before the second rename is undone (the original database is
put back and accepts connections again, the copy is dropped); after it, the restore is done and
the convergence every one of those commands runs finishes it.
"""

from __future__ import annotations

import importlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta

from infra import naming
from infra.backup import leftovers, pg
from infra.backup.catalog import Entry, utc_now
from infra.backup.dump import Target
from infra.backup.fetch import fetching
from infra.backup.verify import restore_checked, scratch_database
from infra.backup.workdir import private_workdir
from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.errors import BackupError, PlatformError, ServerError
from infra.postgres import registry
from infra.postgres.driver import Connection, errors_mapped, session
from infra.postgres.tooling import service_login


@dataclass(frozen=True)
class RestoreReport:
    service: str
    backup_id: str
    seconds: float
    replaced: str | None  # the renamed-aside original, until infra.backup.safety secures it


def converge(
    admin_url: str, config: StackConfig, credentials: Credentials, services: list[str] | None
) -> None:
    """The role model's convergence (infra.postgres.apply), for the given services."""
    from infra.postgres import apply

    apply(admin_url, config, credentials, services=services)


def load_converge_early() -> None:
    """Import the convergence's engine on a thread of its own while the restore waits on the
    server: it is needed right after the swap, where the service is waiting (about 30 ms)."""

    def load() -> None:
        # A failure here is the main thread's to report: its own import raises the same.
        with suppress(Exception):
            importlib.import_module("infra.postgres.engine")

    threading.Thread(target=load, name="load-converge", daemon=True).start()


def restore(
    target: Target,
    entry: Entry,
    admin_url: str,
    config: StackConfig,
    credentials: Credentials,
    *,
    keep_replaced: bool = True,
) -> RestoreReport:
    """Restore ``entry`` over the service's database; the original is renamed aside, never
    dumped or dropped here (``keep_replaced=False`` only for a database known to be empty)."""
    manifest = entry.manifest
    service = manifest.service
    database = naming.database_name(service)
    incoming = scratch_database(service, naming.RESTORE_SUFFIX)
    started = time.monotonic()
    load_converge_early()
    with private_workdir("restore") as work, ExitStack() as reading:
        # Checksum and decryption run while the checks below are made and the copy's database
        # is created; pg_restore gets the dump only once its checksum matched.
        dump = reading.enter_context(fetching(target.bucket, manifest, work, target.key))
        check_can_end_sessions(admin_url, database)
        with restore_lock(admin_url, service, wait=True):
            if service in leftovers.find(admin_url, [service]).interrupted:
                _recover(admin_url, service)
            if not pg.database_exists(admin_url, database):
                converge(admin_url, config, credentials, [service])  # roles first, on a new server
            try:
                with service_login(admin_url, service) as login:
                    problems = restore_checked(admin_url, login, incoming, dump, manifest)
                reading.close()  # refuses an object that changed while it was read
                if problems:
                    raise BackupError(
                        f"restored copy of {manifest.prefix} does not match its manifest "
                        f"({'; '.join(problems[:3])}); {database} was left untouched"
                    )
            except PlatformError:
                pg.drop_database(admin_url, incoming, service)
                raise
            try:
                replaced: str | None = _swap(admin_url, service, incoming)
            except PlatformError:
                pg.drop_database(admin_url, incoming, service)  # the original is back; no copy
                raise
    converge(admin_url, config, credentials, [service])
    if replaced is not None and not keep_replaced:
        pg.drop_database(admin_url, replaced, service)
        replaced = None
    return RestoreReport(
        service, manifest.backup_id, round(time.monotonic() - started, 3), replaced
    )


def check_can_end_sessions(admin_url: str, database: str) -> None:
    """Restore has to end the service's sessions: say so up front if the admin cannot."""
    with session(admin_url, autocommit=True) as conn:
        row = pg.fetch_one(conn, "can_end_sessions")
    if row is None or not row[1]:
        user = row[0] if row else "the admin"
        raise ServerError(
            f"restore of {database} needs to end its sessions, but admin {user} is not a member "
            f"of pg_signal_backend (as a superuser: GRANT pg_signal_backend TO {user}); "
            "nothing was changed"
        )


@contextmanager
def restore_lock(admin_url: str, service: str, *, wait: bool) -> Iterator[bool]:
    """Hold the service's restore lock (in the tooling database, out of every service's reach);
    with ``wait=False`` yield False if a restore has it."""
    with registry.advisory_lock(admin_url, f"restore:{service}", wait=wait) as held:
        yield held


def recover(admin_url: str, service: str) -> list[str]:
    """Finish or undo a restore of ``service`` that was killed half way; what was done.

    Called first by ``apply``, ``backup`` and ``restore``. A restore running right now (it
    holds the service's restore lock) is left alone.
    """
    with restore_lock(admin_url, service, wait=False) as held:
        return _recover(admin_url, service) if held else []


def _recover(admin_url: str, service: str) -> list[str]:
    database = naming.database_name(service)
    incoming = scratch_database(service, naming.RESTORE_SUFFIX)
    with session(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            pg.statement("restore_databases"),
            {"database": database, "incoming": incoming, "old": database + naming.OLD_COPY_PREFIX},
        ).fetchall()
    # Only what this tool made for the service: anything else under these names is left alone.
    found = {
        str(name): bool(allowed)
        for name, allowed in rows
        if registry.is_ours(admin_url, str(name), service)
    }
    old = re.compile(naming.old_copy_pattern(service))
    done: list[str] = []
    if database not in found and incoming in found:
        # Killed between the two renames: the original is the newest __old_ copy.
        olds = sorted(name for name in found if old.fullmatch(name))
        if olds:
            pg.rename_database(admin_url, olds[-1], database, service)
            found[database] = found.pop(olds[-1])
            done.append(f"{service}: interrupted restore undone: {olds[-1]} renamed back")
    if database in found and not found[database]:
        pg.allow_connections(admin_url, database, True)
        done.append(f"{service}: interrupted restore undone: {database} accepts connections")
    if incoming in found and database in found:
        pg.drop_database(admin_url, incoming, service)
        done.append(f"{service}: interrupted restore undone: {incoming} dropped")
    if database in found and _swapped_in_unconverged(admin_url, service):
        done.append(
            f"{service}: a restore was swapped in but its roles and privileges were not "
            "converged; `db apply` (or the next restore) finishes it"
        )
    return done


def _swapped_in_unconverged(admin_url: str, service: str) -> bool:
    """The live database is a restored copy: registered as a scratch database, not yet as the
    service's own (the convergence does that)."""
    database = naming.database_name(service)
    found = registry.read(admin_url, [service], [database]).get(database)
    return found is not None and found == (service, registry.SCRATCH)


def old_database_name(conn: Connection, database: str) -> str:
    """``<db>__old_<UTC time>``: the first free second from now, so quick restores never clash."""
    moment = utc_now().replace(microsecond=0)
    while True:
        name = naming.old_copy(database, moment)
        if not pg.exists(conn, name):
            return name
        moment += timedelta(seconds=1)


def _swap(admin_url: str, service: str, incoming: str) -> str:
    """Move the verified copy in; put the original back if the second rename fails.

    Both names are checked as this tool's first (one registry read), then the renames run in
    one admin session: the service waits for the swap alone, not for a login per step. A
    session cut off half way leaves what ``recover`` undoes or finishes.
    """
    database = naming.database_name(service)
    found = registry.check_all_ours(admin_url, [database, incoming], service)
    for name, exists in found.items():
        if not exists:
            raise ServerError(f"database {name} does not exist; nothing renamed")
    with session(admin_url, autocommit=True) as conn:
        old = old_database_name(conn, database)
        pg.set_allow_connections(conn, database, False)
        try:
            with errors_mapped(admin_url):
                pg.rename_checked(conn, database, old)
        except PlatformError:
            pg.set_allow_connections(conn, database, True)
            raise
        try:
            with errors_mapped(admin_url):
                pg.rename_checked(conn, incoming, database)
        except PlatformError:
            pg.rename_checked(conn, old, database)
            pg.set_allow_connections(conn, database, True)
            raise
    return old
