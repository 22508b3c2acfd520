"""Securing what a restore replaced: dump it, verify the dump, and only then drop it.

A restore renames the live database aside to ``<service>__old_<time>`` and is done: that copy
is the safety copy, and dumping it is kept off the restore's critical path. This step runs
later: in every ``backup`` (so ``backup-run`` and the backup loop), before the service's own
backup; at the end of ``rebuild``; and at the end of ``restore --secure-replaced``. Each copy
is renamed to ``<service>__safety`` (the one name the tool login may reach besides the scratch
databases), dumped as a backup with ``"purpose": "safety"``, that backup is verified by
restoring it, and only a verified dump lets the copy be dropped.

Killed or failed at any point, nothing is lost: the copy stays under its old name or as
``__safety``, and the next run starts again from there (killed between the verification and
the drop, it dumps the copy once more: names of old copies can recur, so an earlier dump is
never taken as proof for a copy). It runs under
the service's restore lock, so it never touches a copy a running restore may still rename
back; when a restore holds the lock, the copies wait for the next run.
"""

from __future__ import annotations

import re

from infra import naming
from infra.backup import pg
from infra.backup.catalog import Entry
from infra.backup.dump import Target, backup_postgres
from infra.backup.restore import restore_lock
from infra.backup.verify import scratch_database, verify
from infra.errors import BackupError, ServerError
from infra.postgres import registry


def pending_copies(admin_url: str, service: str) -> list[str]:
    """Replaced databases still waiting for a verified dump: ``__safety`` first, oldest next;
    only the ones this tool made (infra.postgres.registry), never a stranger's under our names."""
    database = naming.database_name(service)
    safety = scratch_database(service, naming.SAFETY_SUFFIX)
    old = re.compile(naming.old_copy_pattern(service))
    names = [
        name
        for name in pg.database_names(admin_url, f"{database}__")
        if (name == safety or old.fullmatch(name)) and registry.is_ours(admin_url, name, service)
    ]
    return [n for n in names if n == safety] + sorted(n for n in names if n != safety)


def secure_replaced(target: Target, admin_url: str, service: str, dump_format: str) -> list[str]:
    """Dump, verify and drop every replaced copy of ``service``; one line per copy secured.

    Raises (naming the copy, which is kept) when a dump cannot be stored or does not verify.
    """
    with restore_lock(admin_url, service, wait=False) as held:
        if not held:
            return []  # a restore is running: the next run secures them
        return [
            _secure(target, admin_url, service, copy, dump_format)
            for copy in pending_copies(admin_url, service)
        ]


def _secure(target: Target, admin_url: str, service: str, copy: str, dump_format: str) -> str:
    safety = scratch_database(service, naming.SAFETY_SUFFIX)
    if copy != safety:
        pg.rename_database(admin_url, copy, safety, service)
    pg.allow_connections(admin_url, safety, True)
    kept = f"the replaced database {copy} is kept as {safety}; the next backup or restore retries"
    try:
        manifest = backup_postgres(
            target, admin_url, service, dump_format, purpose="safety", database=safety, source=copy
        )
        # The manifest this run just wrote, in the folder it wrote it to.
        result = verify(target.bucket, Entry(manifest, (), manifest.prefix), admin_url, target.key)
    except (BackupError, ServerError) as error:
        raise type(error)(f"safety backup of {copy} failed ({error}); {kept}") from None
    if not result.ok:
        raise BackupError(
            f"safety backup {manifest.backup_id} of {copy} failed its verification "
            f"({'; '.join(result.problems[:3])}); {kept}"
        )
    pg.drop_database(admin_url, safety, service)
    return f"{service}: {copy} saved as safety backup {manifest.backup_id} (verified), dropped"
