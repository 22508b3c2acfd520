"""``dr-drill``: rebuild every service on an empty server from its newest verified backup.

"Empty" means no service database holds data: a recovery stack that ``pulumi up`` has just
provisioned (databases and roles, no tables) is the prod-dr runbook's target, and it is empty
in that sense. A database with any table refuses the drill, so it never clobbers live data.

It measures what matters after a disaster: recovery time (from the start: convergence, then
each restore and its verification, in seconds) and recovery point (how old the restored backup
was). The databases it replaces hold no data, so they are dropped, not dumped.
"""

from __future__ import annotations

import time
from typing import Any

from infra import naming
from infra.backup import pg
from infra.backup.dump import Target
from infra.backup.recovery import restore_services
from infra.backup.restore import converge
from infra.config.model import StackConfig
from infra.credentials import Credentials
from infra.errors import UsageError


def drill(
    target: Target, admin_url: str, config: StackConfig, credentials: Credentials
) -> dict[str, Any]:
    """Converge, restore, verify; the report says ``ok: false`` on any mismatch."""
    present = [
        s.name
        for s in config.services
        if pg.database_exists(admin_url, naming.database_name(s.name))
        and pg.holds_data(admin_url, naming.database_name(s.name))
    ]
    if present:
        raise UsageError(
            f"dr-drill needs an empty PostgreSQL server; {', '.join(present)} already hold data "
            "(point --admin-url at a fresh server)"
        )
    started = time.monotonic()
    converge(admin_url, config, credentials, None)
    converge_seconds = time.monotonic() - started
    services = restore_services(
        target, admin_url, config, credentials, started=started, keep_replaced=False
    )
    return {
        "ok": all(item["ok"] for item in services.values()),
        "converge_s": round(converge_seconds, 3),
        "total_s": round(time.monotonic() - started, 3),
        "services": services,
    }
