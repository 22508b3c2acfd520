"""Backup commands: ``backup``, ``list``, ``verify``, ``restore``, ``prune``, ``dr-drill`` and
``backup-loop`` (the dev backup container's scheduler).

Bucket URLs are ``file:///path`` or ``gs://bucket/prefix``. Passwords never travel on the
command line: the admin URL may omit its password (taken from the secrets file), Redis and
RabbitMQ admin passwords always come from the secrets file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict

from infra.backup import crypto
from infra.backup.catalog import Entry, entries, find, scan, utc_now
from infra.backup.drill import drill
from infra.backup.dump import (
    Target,
    backup_postgres,
    backup_rabbitmq,
    backup_redis,
    check_management_url,
    check_redis_url,
)
from infra.backup.progress import human
from infra.backup.prune import prune
from infra.backup.restore import recover, restore
from infra.backup.schedule import next_run
from infra.backup.storage import FileBucket, open_bucket
from infra.backup.verify import verify
from infra.commands.common import ADMIN_URL_ENV as ADMIN_URL_ENV  # re-exported
from infra.commands.common import add_stack_options, admin_url, load
from infra.config import StackConfig, load_stack
from infra.credentials import Credentials
from infra.errors import PlatformError, UsageError

BUCKET_ENV = "PERSISTENCE_BACKUP_BUCKET"
REDIS_URL_ENV = "PERSISTENCE_REDIS_URL"
MANAGEMENT_URL_ENV = "PERSISTENCE_MANAGEMENT_URL"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("backup", help="back up service databases, Redis, RabbitMQ")
    _server_options(parser)
    parser.add_argument("--service", help="only this service's database")
    parser.set_defaults(handler=run_backup)

    parser = subparsers.add_parser("list", help="backups per service, newest first")
    _bucket_option(parser)
    parser.add_argument("--service", help="only this service (or 'server' for Redis/RabbitMQ)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run_list)

    parser = subparsers.add_parser("verify", help="restore backups into scratch databases")
    add_stack_options(parser)
    _bucket_option(parser)
    _admin_option(parser)
    parser.add_argument("--service", help="only this service")
    parser.add_argument("--backup", help="re-verify this backup id (default: every unverified)")
    parser.set_defaults(handler=run_verify)

    parser = subparsers.add_parser("restore", help="restore a service database from a backup")
    add_stack_options(parser)
    _bucket_option(parser)
    _admin_option(parser)
    parser.add_argument("--service", required=True)
    parser.add_argument("--at", help="backup id, or the newest backup at/before an ISO time")
    parser.set_defaults(handler=run_restore)

    parser = subparsers.add_parser("prune", help="drop backups outside the kept generations")
    parser.add_argument("--stack", required=True, help="stack name (backup.keep is read)")
    _bucket_option(parser)
    parser.add_argument("--dry-run", action="store_true", help="say what would be deleted")
    parser.set_defaults(handler=run_prune)

    parser = subparsers.add_parser("dr-drill", help="rebuild every service on an empty server")
    add_stack_options(parser)
    _bucket_option(parser)
    _admin_option(parser)
    parser.set_defaults(handler=run_drill)

    parser = subparsers.add_parser(
        "backup-loop", help="backup, verify and prune on the stack's backup.schedule (cron, UTC)"
    )
    _server_options(parser)
    parser.add_argument("--runs", type=int, default=0, help="stop after N runs (0: forever)")
    parser.set_defaults(handler=run_loop)


def _bucket_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bucket",
        default=os.environ.get(BUCKET_ENV),
        help=f"file:///path or gs://bucket/prefix (default: ${BUCKET_ENV})",
    )


def _admin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(ADMIN_URL_ENV),
        help="postgresql://ADMIN@HOST:PORT/postgres; a missing password comes from the secrets "
        f"file (default: ${ADMIN_URL_ENV})",
    )


def _server_options(parser: argparse.ArgumentParser) -> None:
    add_stack_options(parser)
    _bucket_option(parser)
    _admin_option(parser)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get(REDIS_URL_ENV),
        help=f"redis://HOST:PORT: also take an RDB snapshot (${REDIS_URL_ENV})",
    )
    parser.add_argument(
        "--management-url",
        default=os.environ.get(MANAGEMENT_URL_ENV),
        help=f"http://HOST:15672: also save RabbitMQ definitions (${MANAGEMENT_URL_ENV})",
    )


def _target(args: argparse.Namespace, *, must_exist: bool = True) -> Target:
    """The bucket; one that must already hold backups (all but ``backup``) must exist."""
    if not args.bucket:
        raise UsageError(f"--bucket is required (or set {BUCKET_ENV}), e.g. file:///var/backups")
    bucket = open_bucket(args.bucket)
    if must_exist and isinstance(bucket, FileBucket) and not bucket.root.is_dir():
        raise UsageError(f"--bucket {args.bucket}: {bucket.root} is not an existing directory")
    return Target(bucket, crypto.key_from_env())


def _admin_url(args: argparse.Namespace, credentials: Credentials) -> str:
    return admin_url(args, credentials)


def _services(config: StackConfig, only: str | None) -> list[str]:
    names = [s.name for s in config.services]
    if only is not None and only not in names:
        raise UsageError(f"--service {only!r} is not in the stack; services: {', '.join(names)}")
    return [only] if only else names


def run_backup(args: argparse.Namespace) -> int:
    config, credentials = load(args)
    target = _target(args, must_exist=False)  # the first backup creates a file:// bucket
    admin_url = _admin_url(args, credentials)
    if args.redis_url:
        check_redis_url(args.redis_url)
    if args.management_url:
        check_management_url(args.management_url)
    made = []
    failed: list[str] = []
    for name in _services(config, args.service):
        try:
            for line in recover(admin_url, name):  # a restore killed half way, first
                print(line, flush=True)
            made.append(backup_postgres(target, admin_url, name, config.backup.format))
        except PlatformError as error:  # one service's fault never stops the others' backups
            failed.append(name)
            print(f"error: postgres/{name}: {error}", file=sys.stderr, flush=True)
    if args.redis_url and args.service is None:
        made.append(
            backup_redis(target, args.redis_url, config.redis.admin_user, credentials.redis_admin)
        )
    if args.management_url and args.service is None:
        made.append(
            backup_rabbitmq(
                target, args.management_url, config.rabbitmq.admin_user, credentials.rabbitmq_admin
            )
        )
    for manifest in made:
        print(
            f"{manifest.kind}/{manifest.service} {manifest.backup_id} {human(manifest.size)} "
            f"sha256 {manifest.sha256[:16]}{' encrypted' if manifest.encrypted else ''}"
        )
    if failed:
        print(f"error: backup failed for {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def run_list(args: argparse.Namespace) -> int:
    target = _target(args)
    scanned, problems = scan(target.bucket)
    for problem in problems:  # one corrupt backup never hides the others
        print(problem, file=sys.stderr)
    found = [e for e in scanned if args.service is None or e.manifest.service == args.service]
    if args.json:
        print(json.dumps([{**asdict(e.manifest), "state": e.state} for e in found], indent=2))
        return 0
    for entry in sorted(found, key=lambda e: (e.manifest.kind, e.manifest.service)):
        m = entry.manifest
        print(f"{m.kind}/{m.service:<16} {m.backup_id}  {human(m.size):>10}  {entry.state}")
    if not found:
        print(f"no complete backups in {target.bucket.url}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    _, credentials = load(args)
    target = _target(args)
    admin_url = _admin_url(args, credentials) if args.admin_url else None
    chosen: list[Entry] = [
        e
        for e in entries(target.bucket)
        if (args.service is None or e.manifest.service == args.service)
        and (e.manifest.backup_id == args.backup if args.backup else e.state == "unverified")
    ]
    if args.backup and not chosen:
        raise UsageError(f"--backup {args.backup!r} is not a complete backup in {args.bucket}")
    if admin_url is None and any(e.manifest.kind == "postgres" for e in chosen):
        raise UsageError(
            f"verifying PostgreSQL backups needs --admin-url (or {ADMIN_URL_ENV}): they are "
            "restored into a scratch database"
        )
    failed = 0
    for entry in chosen:
        result = verify(target.bucket, entry, admin_url)
        m = entry.manifest
        state = "verified" if result.ok else "FAILED"
        print(f"{m.kind}/{m.service} {m.backup_id} {state} in {result.seconds:.1f}s")
        for problem in result.problems:
            print(f"  {problem}", file=sys.stderr)
        failed += not result.ok
    return 1 if failed else 0


def run_restore(args: argparse.Namespace) -> int:
    config, credentials = load(args)
    _services(config, args.service)
    target = _target(args)
    admin_url = _admin_url(args, credentials)
    # Without --at, only a verified backup will do: never an unverified one, never a safety
    # backup (the copy of a database restore was about to replace, perhaps a broken one).
    entry = find(target.bucket, "postgres", args.service, args.at, verified_only=args.at is None)
    report = restore(target, entry, admin_url, config, credentials)
    print(
        f"restored {report.service} from {report.backup_id} in {report.seconds:.1f}s "
        f"(safety backup {report.safety_backup or 'none'}; "
        f"previous database kept as {report.replaced or 'none'})"
    )
    return 0


def run_prune(args: argparse.Namespace) -> int:
    config = load_stack(args.stack)
    target = _target(args)
    report = prune(target.bucket, config.backup.keep, utc_now(), dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for problem in report.problems:
        print(problem, file=sys.stderr)
    for head in report.deleted:
        print(f"{verb} {head}")
    for line in report.refused:
        print(f"kept (retention policy refused the delete): {line}", file=sys.stderr)
    print(f"kept {len(report.kept)}, {verb} {len(report.deleted)}, refused {len(report.refused)}")
    return 0


def run_drill(args: argparse.Namespace) -> int:
    config, credentials = load(args)
    target = _target(args)
    report = drill(target, _admin_url(args, credentials), config, credentials)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def run_loop(args: argparse.Namespace) -> int:
    """Sleep until the next cron time, then backup, verify and prune; errors do not stop it."""
    config = load_stack(args.stack)
    runs = 0
    while args.runs == 0 or runs < args.runs:
        due = next_run(config.backup.schedule, utc_now())
        print(f"next backup at {due.isoformat()}", flush=True)
        time.sleep(max(0.0, (due - utc_now()).total_seconds()))
        for step in (run_backup, run_verify, run_prune):
            step_args = argparse.Namespace(
                **{**vars(args), "service": None, "backup": None, "dry_run": False}
            )
            try:
                step(step_args)
            except Exception as error:  # a scheduler must survive one bad run
                print(f"error: {step.__name__}: {error}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        runs += 1
    return 0
