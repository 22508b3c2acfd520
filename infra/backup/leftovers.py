"""What restores left behind, for every service at once: one catalog query, one registry query.

``apply``, ``backup`` and ``restore`` first finish or undo a restore killed half way
(``infra.backup.restore.recover``), and ``backup`` then secures what restores replaced
(``infra.backup.safety.secure_replaced``). Each of those takes the service's restore lock and
reads the catalog and the registry for one service: run for every service, that is several
connections per service before any work starts. Almost always there is nothing to do, and the
names that say otherwise are known: ``<db>__restore`` (a copy being restored), a live database
that does not accept connections (closed for the swap), ``<db>__old_<time>`` and ``<db>__safety``
(replaced copies waiting for a verified dump), and a live database still registered as a
scratch copy (swapped in, not yet converged). So the catalog is read once for all of them, the
registry once for what it found, and only a service named here takes its lock and runs its
own per-service step, which decides as before (a running restore is left alone; only databases
this tool made for the service are touched).

This is a filter, never the decision: it may name a service with nothing to do (a database
under our names that the per-service step finds is not ours), never miss one that has.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from infra import naming
from infra.backup import pg
from infra.postgres import registry
from infra.postgres.driver import session


@dataclass(frozen=True)
class Leftovers:
    interrupted: frozenset[str]  # services whose restore may have been killed half way
    unsecured: frozenset[str]  # services with replaced copies that may wait for a safety dump

    @classmethod
    def everywhere(cls, services: Sequence[str]) -> Leftovers:
        """Every service suspect: what a caller falls back to when the look itself failed, so
        each service's own step runs (and fails, or not) on its own as before."""
        return cls(frozenset(services), frozenset(services))


def find(admin_url: str, services: Sequence[str]) -> Leftovers:
    """The services that have something for ``recover`` or ``secure_replaced`` to look at."""
    databases = {naming.database_name(service): service for service in services}
    with session(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            pg.statement("service_databases"),
            {"databases": list(databases), "tooling": registry.TOOLING},
        ).fetchall()
    found = {str(name): (bool(allowed), str(owner)) for name, allowed, owner in rows}
    registered = (
        registry.read_existing(admin_url, list(services), list(found))
        if found.pop(registry.TOOLING, None) is not None
        else {}
    )
    interrupted: set[str] = set()
    unsecured: set[str] = set()
    for name, (allowed, owner) in found.items():
        service = databases.get(name.split("__", 1)[0])
        if service is None:
            continue
        held = registered.get(name)
        # What the per-service step may take as ours: registered for the service, or not
        # registered but owned by its owner role (which ``registry.is_ours`` may adopt).
        ours = held[0] == service if held else owner == naming.owner_role(service)
        if not ours:
            continue
        if name == naming.database_name(service):
            if not allowed or held == (service, registry.SCRATCH):
                interrupted.add(service)  # closed for a swap, or swapped in unconverged
        elif name == naming.database_name(service) + naming.RESTORE_SUFFIX:
            interrupted.add(service)
        elif name == naming.database_name(service) + naming.SAFETY_SUFFIX or re.fullmatch(
            naming.old_copy_pattern(service), name
        ):
            unsecured.add(service)
    return Leftovers(frozenset(interrupted), frozenset(unsecured))
