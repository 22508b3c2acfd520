"""``db lag``: each read replica's replay lag, read on the primary; non-zero past the limit.

Read through the admin login (a member of ``pg_monitor``) from the primary's own views: a row
per replication slot (dev: ``replica_<n>``, one per declared replica) joined to the sender
streaming through it, and in prod every replica Cloud SQL streams to. A declared replica that is
not streaming is a failure like a lagging one: its reads are not being served, and its slot is
holding back WAL on the primary.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.config import StackConfig

SLOT_NAME = re.compile(r"replica_[0-9]+")  # a dev member's slot (render.postgres.replica_slot)

# On the primary: every slot (dev's replicas stream through theirs) and every sender (prod's
# Cloud SQL replicas, whose slots are not ours to name), with how far each one's replay is
# behind the primary's current WAL position, in bytes and in seconds.
LAG_QUERY = """
SELECT coalesce(s.slot_name, r.application_name) AS name,
       coalesce(r.state, 'not streaming') AS state,
       coalesce(r.sync_state, '-') AS sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint AS replay_bytes,
       extract(epoch FROM r.replay_lag)::float8 AS replay_seconds,
       pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint AS retained_bytes
FROM pg_replication_slots s
FULL JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_type IS DISTINCT FROM 'logical'
ORDER BY 1
"""


@dataclass(frozen=True)
class ReplicaLag:
    """One replica as the primary sees it."""

    name: str
    state: str  # streaming, catchup, ... or "not streaming"
    sync_state: str  # async, or quorum (postgres.synchronous: a commit waits for one of them)
    replay_bytes: int | None  # None: not streaming
    replay_seconds: float  # 0 when caught up (PostgreSQL reports no lag once idle)
    retained_bytes: int | None  # WAL its slot holds back on the primary, if it has one

    @property
    def streaming(self) -> bool:
        return self.state == "streaming"

    def line(self, limit: float) -> str:
        lag_bytes = "-" if self.replay_bytes is None else str(self.replay_bytes)
        retained = "-" if self.retained_bytes is None else str(self.retained_bytes)
        verdict = "ok" if self.healthy(limit) else "FAIL"
        return (
            f"{self.name:<24} {self.state:<14} {self.sync_state:<7} {lag_bytes:>12} "
            f"{self.replay_seconds:>10.3f} "
            f"{retained:>14} {verdict}"
        )

    def healthy(self, limit: float) -> bool:
        return self.streaming and self.replay_seconds <= limit


HEADER = (
    f"{'replica':<24} {'state':<14} {'commits':<7} {'lag bytes':>12} {'lag s':>10} "
    f"{'slot holds':>14} verdict"
)


def replica_lags(rows: list[dict[str, Any]]) -> list[ReplicaLag]:
    return [
        ReplicaLag(
            name=str(row["name"]),
            state=str(row["state"]),
            sync_state=str(row["sync_state"]),
            replay_bytes=None if row["replay_bytes"] is None else int(row["replay_bytes"]),
            replay_seconds=float(row["replay_seconds"] or 0.0),
            retained_bytes=None if row["retained_bytes"] is None else int(row["retained_bytes"]),
        )
        for row in rows
    ]


def expected_replicas(config: StackConfig) -> int:
    """The replicas the stack declares: ``postgres.replicas``, plus prod's DR replica."""
    extra = 1 if config.platform == "gcp" and config.gcp.dr_replica_region else 0
    return config.postgres.replicas + extra


def orphaned_slots(config: StackConfig, lags: list[ReplicaLag]) -> list[ReplicaLag]:
    """dev: slots of replicas the stack no longer declares (``postgres.replicas`` went down):
    each holds WAL back on the primary (up to ``max_slot_wal_keep_size``) for nobody."""
    if config.platform != "docker":
        return []
    from infra.render import postgres as pg_files  # Jinja: only where slots are ours to name

    declared = {pg_files.replica_slot(i) for i in pg_files.standbys(config)}
    return [
        lag
        for lag in lags
        if SLOT_NAME.fullmatch(lag.name) and lag.name not in declared and not lag.streaming
    ]


def problems(
    config: StackConfig, lags: list[ReplicaLag], limit: float, stack: str = "<stack>"
) -> list[str]:
    """Why the command fails, one line each (empty: every replica streams within the limit)."""
    primary = config.postgres.primary or "postgres"
    found = [
        f"{lag.name}: a slot of no declared replica (postgres.replicas: "
        f"{config.postgres.replicas}) holding {lag.retained_bytes or 0} bytes of WAL on the "
        f"primary; drop it: docker exec persistence-{stack}-{primary} psql -U postgres -c "
        f"\"SELECT pg_drop_replication_slot('{lag.name}')\""
        for lag in orphaned_slots(config, lags)
    ]
    expected = expected_replicas(config)
    streaming = sum(1 for lag in lags if lag.streaming)
    if streaming < expected:
        found.append(f"{streaming} of {expected} declared replica(s) streaming")
    found += [
        f"{lag.name}: replay {lag.replay_seconds:.3f} s behind, over the {limit:g} s limit"
        for lag in lags
        if lag.streaming and lag.replay_seconds > limit
    ]
    return found


def run_lag(args: argparse.Namespace) -> int:
    """Print every replica's lag; exit 1 when one is missing or past the limit."""
    from infra.commands.common import admin_url, load_admin_only
    from infra.postgres.driver import rows, session

    config, credentials = load_admin_only(args)
    limit = float(args.max_lag_seconds or config.postgres.max_replica_lag_seconds)
    with session(admin_url(args, credentials), autocommit=True) as conn:
        lags = replica_lags(rows(conn, LAG_QUERY))
    print(HEADER)
    for lag in lags:
        print(lag.line(limit))
    from infra.config.load import stack_name

    found = problems(config, lags, limit, stack_name(args.stack))
    for problem in found:
        print(f"FAIL: {problem}")
    if not found:
        print(f"{len(lags)} replica(s), all streaming within {limit:g} s")
    return 1 if found else 0
