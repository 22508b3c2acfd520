"""``rebuild``: the one command for a disaster. Refresh the stack's state, bring it back up, and
restore every service from its newest verified backups, printing recovery time and point:
each service's PostgreSQL database, each service's Redis keys, and each service's RabbitMQ
queues, exchanges, bindings and policies (users, permissions and passwords come from the stack).

    python -m infra rebuild --stack dev

It runs from the project directory with the same backend and passphrase as ``pulumi up``.
Nothing is overwritten blindly: like ``python -m infra restore``, each restore keeps the
database it replaces, and once every service is back (and the report printed) each replaced
database is dumped as a safety backup, verified, and only then dropped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from infra.errors import UsageError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rebuild", help="after a disaster: refresh, pulumi up, restore every service"
    )
    parser.add_argument(
        "--stack",
        required=True,
        help="the Pulumi stack to rebuild, e.g. dev, or its stack file in the project directory",
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="the Pulumi project directory (default: this checkout)",
    )
    parser.add_argument(
        "--bucket", help="backup bucket URL (default: the stack's backup_bucket output)"
    )
    parser.set_defaults(handler=run_rebuild)


def say(line: str) -> None:
    """One line of progress, flushed: a CI log shows it as it happens."""
    print(line, flush=True)


def run_rebuild(args: argparse.Namespace) -> int:
    # The backup tooling (and its drivers) is imported here: building the parser stays cheap.
    from infra.backup import crypto
    from infra.backup.catalog import utc_now
    from infra.backup.dump import Target
    from infra.backup.recovery import restore_rabbitmq, restore_redis, restore_services
    from infra.backup.storage import open_bucket
    from infra.commands.backup import secure
    from infra.config.load import REPO_ROOT, load_stack
    from infra.credentials import credentials_from_json

    args.project_dir = args.project_dir or REPO_ROOT

    started = time.monotonic()
    # Only backups from before this command count: the rebuilt stack's backup container takes
    # its first backup at once, of servers that are still empty until the restore is done.
    before = utc_now()
    config = load_stack(args.stack, args.project_dir)
    name = _pulumi_stack(args.stack, args.project_dir)
    # Imported here: the Automation API costs every other command ~0.1 s of start-up otherwise.
    from infra import automation

    stack = automation.select(name, args.project_dir)
    if config.platform == "docker" and config.postgres.primary:
        _forget_a_lost_failover(stack, name, config.postgres.primary)
    outputs = automation.refresh_and_up(stack, say)
    bucket_url = args.bucket or outputs.get("backup_bucket")
    if not bucket_url:
        raise UsageError("the stack has no backup_bucket output; give --bucket URL")
    missing = [
        name
        for name in (
            "postgres_admin_url",
            "credentials",
            "redis_admin_url",
            "rabbitmq_management_url",
        )
        if name not in outputs
    ]
    if missing:
        raise UsageError(f"the stack exports no {', '.join(missing)} to restore with")
    admin_url: str = outputs["postgres_admin_url"]
    credentials = credentials_from_json(outputs["credentials"])
    target = Target(open_bucket(bucket_url), crypto.key_from_env())
    up_seconds = time.monotonic() - started

    say(f"restoring from {bucket_url}: postgres, redis, rabbitmq")
    report = restore_services(
        target,
        admin_url,
        config,
        credentials,
        started=started,
        keep_replaced=True,
        say=say,
        before=before,
    )
    redis = restore_redis(
        target, _without_password(outputs["redis_admin_url"]), config, credentials,
        started=started, say=say, before=before,
    )  # fmt: skip
    rabbitmq = restore_rabbitmq(
        target, outputs["rabbitmq_management_url"], config, credentials,
        started=started, say=say, before=before,
    )  # fmt: skip
    # Every service is back (the lines above say so): now, off the recovery's critical path,
    # dump, verify and drop the databases it replaced. The summary stays the last output.
    fmt = config.backup.format
    secured = [secure(target, admin_url, name, fmt) for name in report if report[name]["ok"]]
    ok = all(item["ok"] for item in report.values()) and redis["ok"] and rabbitmq["ok"]
    summary = {
        "ok": ok,
        "up_s": round(up_seconds, 3),
        "services": report,
        "redis": redis,
        "rabbitmq": rabbitmq,
    }
    print(json.dumps(summary, indent=2), flush=True)
    return 0 if ok and all(secured) else 1


def _forget_a_lost_failover(stack: Any, name: str, primary: str) -> None:
    """After a failover (``postgres.primary`` recorded), every member seeds from the primary
    and none may initdb. When the recorded primary's volume is gone too, nothing is left to
    seed from: the record is removed, so the bootstrap server creates the cluster again and
    the restore below fills it."""
    from infra import automation
    from infra.platforms.docker import engine
    from infra.platforms.docker.failover import volume_name
    from infra.render.postgres import member_index

    if engine.volume_exists(volume_name(name, member_index(primary))):
        return
    automation.remove_config(stack, "persistence:postgres.primary")
    say(
        f"postgres.primary: {primary} removed from the stack file: its volume is gone, so "
        "postgres bootstraps the cluster again"
    )


def _pulumi_stack(stack: str, project_dir: Path) -> str:
    """The Pulumi stack's name; a stack file must be the one Pulumi reads for it, in the
    project directory, or the config checked here would not be the one deployed."""
    from infra.config.load import is_path, stack_name, stack_path

    if not is_path(stack):
        return stack
    path = stack_path(stack)
    if path.resolve().parent != project_dir.resolve():
        raise UsageError(
            f"--stack {stack}: Pulumi reads a stack's file from the project directory "
            f"({project_dir}), not {path.resolve().parent}; pass --stack {stack_name(stack)} "
            f"with --project-dir {path.resolve().parent}"
        )
    return stack_name(stack)


def _without_password(url: str) -> str:
    """``redis://HOST:PORT`` from the stack's admin URL: the password goes in AUTH only."""
    parsed = urlsplit(url)
    return f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 6379}"
