"""``db promote`` (``make failover``): the dev stack's PostgreSQL failover, in one command.

    python -m infra db promote --stack Pulumi.dev.yaml [--force]

The steps and why they come in that order are in ``infra.platforms.docker.failover``. After
them, the promotion is recorded in the stack file (``postgres.primary``) through Pulumi, and the
fenced container's entry in the state is refreshed away, so ``make up`` re-creates it as a
replica of the new primary and replaces nothing else of PostgreSQL.
"""

from __future__ import annotations

import argparse
import fcntl
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.errors import UsageError

CONTAINER_TYPE = "docker:index/container:Container"
VOLUME_TYPE = "docker:index/volume:Volume"


def say(line: str) -> None:
    print(line, flush=True)


@contextmanager
def one_at_a_time(stack: str) -> Iterator[None]:
    """Two failovers of one stack never overlap: the second waits for the first."""
    path = Path(tempfile.gettempdir()) / f"persistence-{stack}-promote.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def run_promote(args: argparse.Namespace) -> int:
    from infra import automation
    from infra.config import load_stack
    from infra.config.load import REPO_ROOT, is_path, stack_name, stack_path
    from infra.platforms.docker import engine, failover
    from infra.render import postgres as pg_files

    config = load_stack(args.stack)
    if config.platform != "docker":
        raise UsageError(
            "db promote is the dev stack's failover; Cloud SQL fails over to its standby by "
            "itself, and the README's disaster-recovery runbook promotes the DR replica"
        )
    if not config.postgres.replicas:
        raise UsageError("postgres.replicas is 0: there is no replica to promote")
    stack = stack_name(args.stack)
    started = time.monotonic()
    # Before anything changes: the promotion must be recorded in the stack, or the next
    # `make up` would point everything back at the fenced member.
    work_dir = stack_path(args.stack).parent if is_path(args.stack) else REPO_ROOT
    pulumi_stack = automation.select(stack, work_dir.resolve())
    with one_at_a_time(stack):
        old = pg_files.primary_index(config)
        status = [failover.member_status(stack, index) for index in pg_files.members(config)]
        if status[old].in_recovery is False and not args.force:
            raise failover.FailoverError(
                f"the primary {status[old].container} answers: nothing to fail over. For a "
                "planned switchover pass --force (it is stopped cleanly first)"
            )
        failover.fence(stack, old, say, clean=args.force and status[old].in_recovery is False)
        status = [failover.member_status(stack, index) for index in pg_files.members(config)]
        chosen = failover.choose(status, old)
        others = [m for m in status if m.index not in (old, chosen.index)]
        say(f"promote: {chosen.container} ({chosen.received} bytes of WAL received)")
        failover.promote(chosen, config, others)
        failover.repoint(stack, config, chosen, [*others, status[old]])
        say(
            f"re-pointed: the router and the pooler reach {chosen.host}; writes go on "
            f"({time.monotonic() - started:.1f} s after the start)"
        )
        image = str((engine.inspect(chosen.container) or {}).get("Image", ""))
        failover.set_aside(stack, old, image, say)
        try:
            automation.record_config(pulumi_stack, "persistence:postgres.primary", chosen.host)
        except automation.EngineError as error:
            raise automation.EngineError(
                f"{error}. {chosen.host} is the primary now: record it before any `make up` "
                f"(pulumi config set --path persistence:postgres.primary {chosen.host}), or "
                "run make failover again, which finishes the job"
            ) from None
        # The fenced container (removed above) and its volume, if the disaster took it: the
        # next `make up` creates them again (a volume Docker re-made by itself has no labels).
        host = pg_files.replica_host(old)
        automation.forget_missing(
            pulumi_stack, [(CONTAINER_TYPE, host), (VOLUME_TYPE, f"{host}-data")]
        )
    say(
        f"recorded postgres.primary: {chosen.host} in Pulumi.{stack}.yaml "
        f"({time.monotonic() - started:.1f} s in all). Next: make up (a new replica is seeded "
        f"from {chosen.host}); commit the stack file so the record is shared"
    )
    return 0
