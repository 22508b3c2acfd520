"""Failover of the dev stack's PostgreSQL: promote the most advanced replica, fence the old
primary, re-point the router and the pooler (``python -m infra db promote``).

The order is what keeps the two rules (nothing acknowledged silently lost, never two primaries):

1. **Choose** the standby that has received the most WAL (``pg_last_wal_receive_lsn``). With
   ``postgres.synchronous`` every acknowledged commit is on at least one standby, so on the most
   advanced one.
2. **Fence** the old primary before anything is promoted: its container is set never to
   restart and killed, so two primaries never run at once.
3. **Promote** the chosen standby in place (``pg_promote``, which replays all it received
   first). Its container does not change, so the next ``make up`` does not replace it.
4. **Re-point**: the router's target file (the admin URL, ``MIGRATION_DATABASE_URL``, the
   backups, the standbys' streams) and the pooler's pgbouncer.ini (``DATABASE_URL``), each
   reloaded in place; no env file changes. Slots are made on the new primary for the other
   members, so WAL is kept for them from now on.
5. **Set aside** the old primary's data (moved to ``pgdata.fenced-<time>`` in its volume, never
   deleted: with asynchronous replication it holds the commits the standby had not received)
   and mark the volume (``FENCED``), then remove its container: the next ``make up`` makes it a
   standby, seeded from the new primary.

Each step can run again: a promotion interrupted after step 3 is finished by running the
command again (the member that is no longer in recovery is the one to point at).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from infra.config.model import StackConfig
from infra.errors import PlatformError
from infra.platforms.docker import engine
from infra.platforms.docker.containers import (
    DATA_DIR,
    FENCE_MARKER,
    IMAGE_USER,
    PGDATA,
    POOLER_USER,
)
from infra.platforms.docker.router import ROUTER, TARGET_FILE, target
from infra.render import pgbouncer as pooler_files
from infra.render import postgres as pg_files

STATUS_QUERY = (
    "SELECT pg_is_in_recovery(), "
    "coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), pg_current_wal_lsn()) "
    "- '0/0'::pg_lsn"
)
PROMOTE_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


class FailoverError(PlatformError):
    """The failover cannot go on safely; nothing past the step named was done."""


@dataclass(frozen=True)
class Member:
    """A PostgreSQL member as the failover sees it."""

    index: int
    container: str
    in_recovery: bool | None  # None: it does not answer
    received: int  # bytes of WAL received (a standby) or written (a primary)

    @property
    def host(self) -> str:
        return pg_files.replica_host(self.index)


def container_name(stack: str, index: int) -> str:
    return f"persistence-{stack}-{pg_files.replica_host(index)}"


def volume_name(stack: str, index: int) -> str:
    """Member ``index``'s data volume (as the platform names it: ``<container>-data``)."""
    return f"{container_name(stack, index)}-data"


def psql(container: str, sql: str) -> tuple[int, str]:
    """``sql`` run in ``container`` as the server's own user, by peer over its socket."""
    argv = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql]
    return engine.run_in(container, argv, user=IMAGE_USER)


def member_status(stack: str, index: int) -> Member:
    name = container_name(stack, index)
    if not engine.running(name):
        return Member(index, name, None, 0)
    code, out = psql(name, STATUS_QUERY)
    if code != 0:
        return Member(index, name, None, 0)
    recovery, received = out.strip().split("|")
    return Member(index, name, recovery == "t", int(float(received)))


def choose(members: list[Member], old: int) -> Member:
    """The member to promote: one already promoted (an earlier run stopped half way), else the
    standby that received the most WAL."""
    promoted = [m for m in members if m.index != old and m.in_recovery is False]
    if promoted:
        return promoted[0]
    standbys = [m for m in members if m.index != old and m.in_recovery]
    if not standbys:
        raise FailoverError(
            "no replica answers: nothing can be promoted (make lag shows what streams; "
            "make rebuild restores from backups)"
        )
    return max(standbys, key=lambda m: (m.received, -m.index))


def _put(container: str, path: str, content: str, uid: str) -> None:
    spec = engine.FileSpec(content=content, uid=int(uid), gid=int(uid), mode=0o444)
    engine.put_files(container, {path: spec})


def fence(stack: str, old: int, say: Callable[[str], object], *, clean: bool = False) -> None:
    """Make sure the old primary runs no more and never restarts by itself. ``clean``: stop it
    with a clean shutdown (a switchover: PostgreSQL sends its standbys all its WAL first)."""
    name = container_name(stack, old)
    if engine.inspect(name) is None:
        say(f"fence: {name} is gone")
        return
    engine.never_restart(name)
    if clean:
        engine.stop(name, STOP_TIMEOUT_S)
    else:
        engine.kill(name)
    say(f"fence: {name} {'stopped' if clean else 'killed'} and set never to restart")


def promote(candidate: Member, config: StackConfig, others: list[Member]) -> None:
    """Promote ``candidate`` in place. With ``postgres.synchronous`` it names the other
    standbys that answer (in recovery): with none (the only other member was the old primary)
    it runs asynchronous until ``make up`` seeds one, rather than stall every commit."""
    streaming = [pg_files.replica_slot(m.index) for m in others if m.in_recovery]
    names = streaming if config.postgres.synchronous else []
    setting = f"ANY 1 ({', '.join(names)})" if names else ""
    _put(
        candidate.container,
        pg_files.REPLICATION_CONFIG_FILE,
        f"# Written by db promote; make up renders it again.\n"
        f"synchronous_standby_names = '{setting}'\n",
        IMAGE_USER,
    )
    engine.signal(candidate.container, "HUP")
    if candidate.in_recovery is False:
        return
    code, out = psql(candidate.container, f"SELECT pg_promote(true, {PROMOTE_TIMEOUT_S})")
    if code != 0 or out.strip() != "t":
        raise FailoverError(f"pg_promote on {candidate.container} failed: {out.strip()[-300:]}")


def with_primary(config: StackConfig, index: int) -> StackConfig:
    """``config`` as it reads once member ``index`` is recorded as the primary."""
    postgres = replace(config.postgres, primary=pg_files.replica_host(index))
    return replace(config, postgres=postgres)


def repoint(stack: str, config: StackConfig, promoted: Member, others: list[Member]) -> None:
    """The router and the pooler to the new primary; slots there for the other members."""
    prefix = f"persistence-{stack}"
    _put(f"{prefix}-{ROUTER}", TARGET_FILE, target(promoted.host), "0")
    if config.postgres.pooler.enabled:
        pooler = f"{prefix}-pooler"
        ini = pooler_files.pgbouncer_ini(with_primary(config, promoted.index))
        _put(pooler, pooler_files.CONFIG_FILE, ini, POOLER_USER)
        engine.signal(pooler, "HUP")
    for member in others:
        slot = pg_files.replica_slot(member.index)
        # The slot's name is ours (replica_<n>), never a user's text.
        sql = (
            f"SELECT pg_create_physical_replication_slot('{slot}', true) WHERE NOT EXISTS "  # noqa: S608
            f"(SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}')"
        )
        code, out = psql(promoted.container, sql)
        if code != 0:
            raise FailoverError(f"creating slot {slot} on {promoted.container}: {out[-300:]}")


def set_aside(stack: str, old: int, image: str, say: Callable[[str], object]) -> None:
    """Move the old primary's data aside in its volume (never deleted), mark the volume fenced,
    and remove its container: the next ``make up`` creates it again as a standby."""
    name = container_name(stack, old)
    volume = volume_name(stack, old)
    if engine.volume_exists(volume):
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        pgdata = PGDATA.rsplit("/", 1)[1]
        script = (
            f"set -eu; cd {DATA_DIR}; "
            f"if [ -d {pgdata} ]; then mv {pgdata} {pgdata}.fenced-{stamp}; fi; "
            f'echo "{stamp}: fenced by db promote; its data, if any, is {pgdata}.fenced-{stamp}" '
            f">> {FENCE_MARKER}"
        )
        code, out = engine.run_on_volume(image, volume, DATA_DIR, script)
        if code != 0:
            raise FailoverError(f"setting {volume}'s data aside failed: {out.strip()[-300:]}")
        say(f"fence: {volume}: data moved to {pgdata}.fenced-{stamp} (kept), volume marked")
    engine.remove(name)
    say(f"fence: {name} removed; make up creates it again as a replica")
