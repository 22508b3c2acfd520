"""``restore``: bring a service database back without ever risking the one it replaces.

Order: check the backup's checksum, take a safety backup of the current database, restore into
``<service>__restore`` (as the service's tool login acting as its owner role, never as the
admin, without the dump's owners or grants),
compare it with the manifest, and only then swap names. The old database stays as
``<service>__old_<time>``. Finally the role convergence re-imposes ownership and privileges.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from infra import naming
from infra.backup import pg
from infra.backup.catalog import Entry, utc_now
from infra.backup.dump import Target, backup_postgres
from infra.backup.fetch import fetch, pg_restore, private_workdir
from infra.backup.verify import check_restored, scratch_database
from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.errors import BackupError, PlatformError
from infra.postgres.tooling import service_login

RESTORE_SUFFIX = "__restore"


@dataclass(frozen=True)
class RestoreReport:
    service: str
    backup_id: str
    seconds: float
    safety_backup: str | None
    replaced: str | None


def converge(
    admin_url: str, config: StackConfig, credentials: Credentials, services: list[str] | None
) -> None:
    """The role model's convergence (infra.postgres.apply), for the given services."""
    from infra.postgres import apply

    apply(admin_url, config, credentials, services=services)


def restore(
    target: Target,
    entry: Entry,
    admin_url: str,
    config: StackConfig,
    credentials: Credentials,
    *,
    safety_backup: bool = True,
    keep_replaced: bool = True,
) -> RestoreReport:
    manifest = entry.manifest
    service = manifest.service
    database = naming.database_name(service)
    owner = naming.role_name(service, "owner")
    incoming = scratch_database(service, RESTORE_SUFFIX)
    started = time.monotonic()
    safety: str | None = None
    with private_workdir() as work:
        dump = fetch(target.bucket, manifest, Path(work))  # refuses a corrupt object up front
        if not pg.database_exists(admin_url, database):
            converge(admin_url, config, credentials, [service])  # roles first, on a new server
        if safety_backup:
            safety = backup_postgres(target, admin_url, service, config.backup.format).backup_id
        with service_login(admin_url, service) as login:
            pg.drop_database(admin_url, incoming)
            pg.create_database(admin_url, incoming, owner=owner)
            try:
                pg_restore(login, incoming, dump, role=owner)
                problems = check_restored(login, incoming, manifest)
                if problems:
                    raise BackupError(
                        f"restored copy of {manifest.prefix} does not match its manifest "
                        f"({'; '.join(problems[:3])}); {database} was left untouched"
                    )
            except PlatformError:
                pg.drop_database(admin_url, incoming)
                raise
    try:
        replaced: str | None = _swap(admin_url, database, incoming)
    except PlatformError:
        pg.drop_database(admin_url, incoming)  # the original is back in place; leave no copy
        raise
    converge(admin_url, config, credentials, [service])
    if replaced is not None and not keep_replaced:
        pg.drop_database(admin_url, replaced)
        replaced = None
    return RestoreReport(
        service, manifest.backup_id, round(time.monotonic() - started, 3), safety, replaced
    )


def old_database_name(admin_url: str, database: str) -> str:
    """``<db>__old_<UTC time>``: the first free second from now, so quick restores never clash."""
    moment = utc_now().replace(microsecond=0)
    while True:
        name = f"{database}__old_{moment:%Y%m%d%H%M%S}"
        if not pg.database_exists(admin_url, name):
            return name
        moment += timedelta(seconds=1)


def _swap(admin_url: str, database: str, incoming: str) -> str:
    """Move the verified copy in; put the original back if the second rename fails."""
    old = old_database_name(admin_url, database)
    pg.allow_connections(admin_url, database, False)
    try:
        pg.rename_database(admin_url, database, old)
    except PlatformError:
        pg.allow_connections(admin_url, database, True)
        raise
    try:
        pg.rename_database(admin_url, incoming, database)
    except PlatformError:
        pg.rename_database(admin_url, old, database)
        pg.allow_connections(admin_url, database, True)
        raise
    return old
