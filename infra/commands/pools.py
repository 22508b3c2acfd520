"""``db pools``: per service, what its pooled logins hold and wait for at PgBouncer.

Read from the pooler's console (``SHOW POOLS``) through its console login only: the services'
logins are refused there. The URL comes from ``$POOLER_CONSOLE_URL`` (``make pools`` sets it
from the stack's ``pooler_console_url`` output), else from the stack's endpoints and the
secrets file, as ``render`` writes them.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infra import naming

if TYPE_CHECKING:
    from infra.config import StackConfig

CONSOLE_URL_ENV = "POOLER_CONSOLE_URL"


@dataclass(frozen=True)
class PoolUse:
    """One service's pools (its app and read-only logins), added up."""

    service: str
    clients: int  # client connections: active and waiting
    servers: int  # server connections the pooler holds for it: in use and idle
    waiting: int  # clients waiting for a server connection now
    longest_wait_s: float  # the oldest waiting client's wait so far

    def line(self) -> str:
        return (
            f"{self.service:<24} {self.clients:>8} {self.servers:>8} {self.waiting:>8} "
            f"{self.longest_wait_s:>10.3f}"
        )


HEADER = f"{'service':<24} {'clients':>8} {'servers':>8} {'waiting':>8} {'max wait s':>10}"
SERVER_STATES = ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")


def pool_use(services: list[str], rows: list[dict[str, Any]]) -> list[PoolUse]:
    """Each service's use, from SHOW POOLS rows (one per database and login)."""
    by_database: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_database.setdefault(str(row["database"]), []).append(row)
    uses = []
    for service in services:
        # Its database on the primary, and on the read replicas where the stack has them.
        pools = by_database.get(naming.database_name(service), []) + by_database.get(
            naming.replicas_alias(service), []
        )
        uses.append(
            PoolUse(
                service=service,
                clients=sum(int(r["cl_active"]) + int(r["cl_waiting"]) for r in pools),
                servers=sum(int(r.get(state) or 0) for r in pools for state in SERVER_STATES),
                waiting=sum(int(r["cl_waiting"]) for r in pools),
                longest_wait_s=max(
                    (int(r["maxwait"]) + int(r.get("maxwait_us") or 0) / 1e6 for r in pools),
                    default=0.0,
                ),
            )
        )
    return uses


def console_url(args: argparse.Namespace, config: StackConfig) -> str:
    """``$POOLER_CONSOLE_URL``, else the console login of the stack's secrets file."""
    given = os.environ.get(CONSOLE_URL_ENV)
    if given:
        return given
    from infra import secrets_file
    from infra.commands.common import secrets_path
    from infra.errors import UsageError
    from infra.render import endpoints, has_pooler_files, pgbouncer

    if not has_pooler_files(config):
        raise UsageError(
            f"stack {args.stack!r} runs no PgBouncer of ours (postgres.pooler.enabled is false, "
            "or prod's pooler is Cloud SQL's: see its pooler metrics and the waiting-clients "
            "alert)"
        )
    credentials = secrets_file.load_or_create(secrets_path(args), config)
    return pgbouncer.console_url(endpoints.for_stack(config), credentials.pooler_admin)


def run_pools(args: argparse.Namespace) -> int:
    """Print each service's clients, server connections, waiting clients and longest wait."""
    from infra.config import load_stack
    from infra.postgres.driver import console_rows

    config = load_stack(args.stack)
    rows = console_rows(console_url(args, config), "SHOW POOLS")
    print(HEADER)
    for use in pool_use([spec.name for spec in config.services], rows):
        print(use.line())
    return 0
